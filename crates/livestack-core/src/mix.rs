//! Stream mixing (混流), `CreateCommonMixStream`: up to 16 inputs (live
//! streams of one account, watermark pictures, plain canvases) laid over
//! one another and published as one stream.
//!
//! Owns: the mix session both planes share ([`MixSession`], kept whole as
//! its stored spec) and its geometry ([`MixLayout::place`]: the canvas and
//! each layer's rectangle in pixels, from the caller's pixel-or-fraction
//! values and the inputs' own sizes). Must not: know wire names or error
//! codes, or do I/O.

use serde::{Deserialize, Serialize};

use crate::AccountId;

/// The most inputs of one session.
pub const MAX_INPUTS: usize = 16;

/// A length as the caller gives it: pixels, or a fraction of the
/// background's width or height (`0.01`..=`0.99` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// Pixels.
    Px(u32),
    /// Ten-thousandths of the background's side.
    Fraction(u32),
}

impl Dim {
    /// The wire value (`float`): at or above 1 pixels, below 1 a fraction;
    /// `None` when it is neither (negative, not finite, or above 2000 or
    /// in the gaps the docs leave).
    pub fn from_wire(v: f64) -> Option<Dim> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        if v >= 1.0 {
            return (v <= 2000.0).then(|| Dim::Px(v.round() as u32));
        }
        if v == 0.0 {
            return Some(Dim::Px(0));
        }
        (0.01..=0.99)
            .contains(&v)
            .then(|| Dim::Fraction((v * 10_000.0).round() as u32))
    }

    /// In pixels, against a background side of `of` pixels.
    pub fn pixels(self, of: u32) -> u32 {
        match self {
            Dim::Px(p) => p,
            Dim::Fraction(f) => ((u64::from(of) * u64::from(f) + 5_000) / 10_000) as u32,
        }
    }
}

/// What one input is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixSource {
    /// A live stream of the account, where it was pushed when the session
    /// was made; `audio` / `video` say which of its tracks are mixed
    /// (`InputType` 0: both, 4: audio only, 5: video only).
    Stream {
        /// Its push domain.
        domain: String,
        /// Its app.
        app: String,
        /// Its sound is mixed.
        audio: bool,
        /// Its picture is laid out.
        video: bool,
    },
    /// A watermark picture of the account (`InputType` 2, `WatermarkId`).
    Picture {
        /// The watermark template.
        watermark: i64,
    },
    /// A plain colour (`InputType` 3, `Color`).
    Canvas {
        /// 0xRRGGBB.
        color: u32,
    },
}

/// A cut out of an input before it is scaled (`CropParams`), pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crop {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
}

/// One input and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixInput {
    /// `InputStreamName`: the stream's name, or a label for pictures and
    /// canvases.
    pub name: String,
    /// What it is.
    pub source: MixSource,
    /// `ImageLayer`, 1..=16, unique; 1 is the background.
    pub layer: u32,
    /// Size on the canvas; `None`: the input's own (after its crop).
    pub width: Option<Dim>,
    /// See `width`.
    pub height: Option<Dim>,
    /// Offset of its left edge from the canvas's.
    pub x: Option<Dim>,
    /// Offset of its top edge.
    pub y: Option<Dim>,
    /// Its crop.
    pub crop: Option<Crop>,
}

impl MixInput {
    /// A live stream's name when the input is one.
    pub fn stream(&self) -> Option<(&str, &str)> {
        match &self.source {
            MixSource::Stream { domain, app, .. } => Some((domain, app)),
            _ => None,
        }
    }

    /// Whether it has a picture on the canvas.
    pub fn has_video(&self) -> bool {
        !matches!(self.source, MixSource::Stream { video: false, .. })
    }
}

/// What the mix publishes (`OutputParams`); zeros are "automatic".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixOutput {
    /// `OutputStreamName`.
    pub stream: String,
    /// Where it is published: the push domain and app of the session's
    /// first live input.
    pub domain: String,
    /// See `domain`.
    pub app: String,
    /// `OutputStreamType` 0: the output is one of the inputs, so players
    /// of that name see the mix instead; 1: a stream of its own.
    pub replaces_input: bool,
    /// kbps.
    pub video_kbps: u32,
    /// Seconds between keyframes.
    pub gop_secs: u32,
    /// Frames per second.
    pub fps: u32,
    /// Audio kbps.
    pub audio_kbps: u32,
    /// Hz.
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u32,
}

/// A session's inputs, layout and output: what the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixLayout {
    /// In layer order.
    pub inputs: Vec<MixInput>,
    /// The output.
    pub output: MixOutput,
    /// `MixStreamTemplateId`; 0: the inputs' own positions.
    pub template: i64,
    /// `UseMixCropCenter`: an input whose picture's shape differs from
    /// its place is cut to that shape around its centre, not stretched.
    #[serde(default)]
    pub crop_center: bool,
    /// `UsePictureTransparent`: pictures' alpha channels are honoured.
    #[serde(default)]
    pub picture_alpha: bool,
}

/// A mix session as the media plane runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixSession {
    /// The row id.
    pub id: i64,
    /// The owner.
    pub account: AccountId,
    /// `MixStreamSessionId`.
    pub session_id: String,
    /// What it mixes and how.
    pub layout: MixLayout,
    /// Changes with every update of the session: the media plane runs one
    /// job per (id, generation), so a new layout starts a new job.
    pub generation: i64,
}

/// A rectangle on the canvas, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A placed layout: the canvas size (pixels) and, in layer order, each
/// input with a picture and its rectangle.
pub type Placed<'a> = ((u32, u32), Vec<(&'a MixInput, Rect)>);

/// Why a layout cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// No input is layer 1.
    NoBackground,
    /// The background's size is not known: a canvas without
    /// `ImageWidth`/`ImageHeight`, or a stream whose picture size has not
    /// been seen; or it is given as a fraction (of itself).
    BackgroundSize,
    /// A crop reaches outside its input (its name).
    Crop(String),
}

/// The template ids CSS documents, with the number of inputs each takes.
pub const TEMPLATES: [(i64, usize); 12] = [
    (10, 2),
    (20, 2),
    (30, 2),
    (40, 2),
    (50, 2),
    (310, 3),
    (390, 3),
    (391, 3),
    (410, 4),
    (510, 5),
    (590, 5),
    (610, 6),
];

impl MixLayout {
    /// The background (layer 1).
    pub fn background(&self) -> Option<&MixInput> {
        self.inputs.iter().find(|i| i.layer == 1)
    }

    /// The canvas size and, in layer order, where each input with a
    /// picture goes. `size` is an input's own picture size (a stream's
    /// from its sequence header, a picture's from its file), `None` when
    /// unknown. With a template, CSS publishes the geometry only as
    /// preview pictures, so the inputs are laid out as an even grid over
    /// the background's size instead (documented as an approximation).
    pub fn place(
        &self,
        size: &dyn Fn(&MixInput) -> Option<(u32, u32)>,
    ) -> Result<Placed<'_>, PlaceError> {
        let bg = self.background().ok_or(PlaceError::NoBackground)?;
        // An input's own size after its crop; a crop reaching outside a
        // known size is an error.
        let own = |i: &MixInput| -> Result<Option<(u32, u32)>, PlaceError> {
            let Some(seen) = size(i) else {
                return Ok(i.crop.map(|c| (c.width, c.height)));
            };
            match i.crop {
                Some(c) if c.x + c.width > seen.0 || c.y + c.height > seen.1 => {
                    Err(PlaceError::Crop(i.name.clone()))
                }
                Some(c) => Ok(Some((c.width, c.height))),
                None => Ok(Some(seen)),
            }
        };
        let side = |d: Option<Dim>, own: Option<u32>| match d {
            Some(Dim::Px(p)) if p > 0 => Some(p),
            Some(Dim::Fraction(_)) => None,
            _ => own,
        };
        let bg_own = own(bg)?;
        let w = side(bg.width, bg_own.map(|s| s.0)).ok_or(PlaceError::BackgroundSize)?;
        let h = side(bg.height, bg_own.map(|s| s.1)).ok_or(PlaceError::BackgroundSize)?;
        // Encoders want even sides.
        let canvas = ((w.max(2) + 1) & !1, (h.max(2) + 1) & !1);
        let pictures: Vec<&MixInput> = self.inputs.iter().filter(|i| i.has_video()).collect();
        let mut out = Vec::with_capacity(pictures.len());
        if self.template != 0 {
            let n = pictures.len().max(1) as u32;
            let cols = (1..=n).find(|c| c * c >= n).unwrap_or(1);
            let rows = n.div_ceil(cols);
            let (cw, ch) = (canvas.0 / cols, canvas.1 / rows);
            for (k, i) in pictures.into_iter().enumerate() {
                let k = k as u32;
                let rect = Rect {
                    x: (k % cols) * cw,
                    y: (k / cols) * ch,
                    width: cw,
                    height: ch,
                };
                out.push((i, rect));
            }
            return Ok((canvas, out));
        }
        for i in pictures {
            let rect = if i.layer == 1 {
                Rect {
                    x: 0,
                    y: 0,
                    width: canvas.0,
                    height: canvas.1,
                }
            } else {
                let o = own(i)?;
                let dim = |d: Option<Dim>, of: u32, own: Option<u32>| match d {
                    Some(d) if d.pixels(of) > 0 => d.pixels(of),
                    _ => own.unwrap_or(of),
                };
                Rect {
                    x: i.x.map_or(0, |d| d.pixels(canvas.0)),
                    y: i.y.map_or(0, |d| d.pixels(canvas.1)),
                    width: dim(i.width, canvas.0, o.map(|s| s.0)),
                    height: dim(i.height, canvas.1, o.map(|s| s.1)),
                }
            };
            out.push((i, rect));
        }
        Ok((canvas, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, layer: u32, source: MixSource) -> MixInput {
        MixInput {
            name: name.into(),
            source,
            layer,
            width: None,
            height: None,
            x: None,
            y: None,
            crop: None,
        }
    }

    fn stream() -> MixSource {
        MixSource::Stream {
            domain: "push.example.com".into(),
            app: "live".into(),
            audio: true,
            video: true,
        }
    }

    fn layout(inputs: Vec<MixInput>, template: i64) -> MixLayout {
        MixLayout {
            inputs,
            output: MixOutput {
                stream: "out".into(),
                domain: "push.example.com".into(),
                app: "live".into(),
                replaces_input: false,
                video_kbps: 0,
                gop_secs: 0,
                fps: 0,
                audio_kbps: 0,
                sample_rate: 0,
                channels: 0,
            },
            template,
            crop_center: false,
            picture_alpha: false,
        }
    }

    #[test]
    fn wire_lengths_are_pixels_from_one_and_fractions_below() {
        assert_eq!(Dim::from_wire(640.0), Some(Dim::Px(640)));
        assert_eq!(Dim::from_wire(1.0), Some(Dim::Px(1)));
        assert_eq!(Dim::from_wire(0.5), Some(Dim::Fraction(5_000)));
        assert_eq!(Dim::from_wire(0.0), Some(Dim::Px(0)));
        for bad in [-1.0, 0.005, 0.995, 2000.5, f64::NAN] {
            assert_eq!(Dim::from_wire(bad), None, "{bad}");
        }
        assert_eq!(Dim::Fraction(5_000).pixels(641), 321);
        assert_eq!(Dim::Fraction(2_500).pixels(640), 160);
    }

    #[test]
    fn the_background_sets_the_canvas_and_others_go_where_they_are_put() {
        let mut canvas = input("canvas", 1, MixSource::Canvas { color: 0x00_00_ff });
        canvas.width = Some(Dim::Px(641));
        canvas.height = Some(Dim::Px(360));
        let mut a = input("a", 2, stream());
        a.width = Some(Dim::Fraction(5_000));
        a.height = Some(Dim::Fraction(5_000));
        let mut b = input("b", 3, stream());
        b.x = Some(Dim::Fraction(5_000));
        b.y = Some(Dim::Px(100));
        let sound = input(
            "sound",
            4,
            MixSource::Stream {
                domain: "d".into(),
                app: "live".into(),
                audio: true,
                video: false,
            },
        );
        let l = layout(vec![canvas, a, b, sound], 0);
        let (size, placed) = l.place(&|i| (i.name == "b").then_some((200, 100))).unwrap();
        assert_eq!(size, (642, 360));
        let rects: Vec<(&str, Rect)> = placed.iter().map(|(i, r)| (i.name.as_str(), *r)).collect();
        assert_eq!(
            rects,
            [
                (
                    "canvas",
                    Rect {
                        x: 0,
                        y: 0,
                        width: 642,
                        height: 360
                    }
                ),
                (
                    "a",
                    Rect {
                        x: 0,
                        y: 0,
                        width: 321,
                        height: 180
                    }
                ),
                (
                    "b",
                    Rect {
                        x: 321,
                        y: 100,
                        width: 200,
                        height: 100
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_stream_background_takes_its_own_size_after_its_crop_and_a_bad_crop_is_refused() {
        let mut bg = input("bg", 1, stream());
        bg.crop = Some(Crop {
            width: 320,
            height: 180,
            x: 10,
            y: 10,
        });
        let l = layout(vec![bg.clone()], 0);
        assert_eq!(l.place(&|_| Some((640, 360))).unwrap().0, (320, 180));
        assert_eq!(l.place(&|_| None).unwrap().0, (320, 180), "the crop's size");
        let l = layout(vec![input("bg", 1, stream())], 0);
        assert_eq!(l.place(&|_| None), Err(PlaceError::BackgroundSize));
        let l = layout(vec![bg], 0);
        assert_eq!(
            l.place(&|_| Some((300, 300))),
            Err(PlaceError::Crop("bg".into()))
        );
        let mut canvas = input("c", 1, MixSource::Canvas { color: 0 });
        canvas.width = Some(Dim::Fraction(5_000));
        assert_eq!(
            layout(vec![canvas], 0).place(&|_| None),
            Err(PlaceError::BackgroundSize)
        );
        assert_eq!(
            layout(vec![input("a", 2, stream())], 0).place(&|_| None),
            Err(PlaceError::NoBackground)
        );
    }

    #[test]
    fn a_template_lays_the_pictures_out_as_an_even_grid() {
        let l = layout(
            vec![
                input("a", 1, stream()),
                input("b", 2, stream()),
                input("c", 3, stream()),
            ],
            310,
        );
        let (size, placed) = l.place(&|_| Some((640, 360))).unwrap();
        assert_eq!(size, (640, 360));
        let rects: Vec<Rect> = placed.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            rects[0],
            Rect {
                x: 0,
                y: 0,
                width: 320,
                height: 180
            }
        );
        assert_eq!(
            rects[1],
            Rect {
                x: 320,
                y: 0,
                width: 320,
                height: 180
            }
        );
        assert_eq!(
            rects[2],
            Rect {
                x: 0,
                y: 180,
                width: 320,
                height: 180
            }
        );
    }
}
