//! Plain MP4 from fragmented MP4: the index (`moov` with full sample
//! tables) first, then one `mdat` with every sample, so that a recording
//! written as fragments (crash-safe: every fragment is whole on disk) is
//! delivered as the file players and editors expect, with its duration and
//! seekable at once ("faststart").
//!
//! Owns: reading the boxes of a fragmented file (`ftyp`, `moov` with its
//! tracks and `mvex`/`trex` defaults, `moof` with `tfhd`/`tfdt`/`trun`)
//! and writing the plain file's header: `ftyp`, `moov` (`mvhd`, per track
//! `tkhd`, an edit list where a track starts late or with composition
//! offsets, `mdhd`, `hdlr`, the sample description as it was, `stts`,
//! `ctts`, `stss`, `stsz`, `stsc`, `co64`) and the `mdat` header. Must not:
//! do I/O. [`Faststart`] takes the top-level boxes a caller read and gives
//! a [`Plan`]: the header bytes, then the byte ranges of the source to copy
//! after it, in order. Nor may it panic or allocate beyond what the input's
//! own sizes justify, whatever the input (the `mp4_faststart` fuzz target).
//!
//! The source may be cut short (a recorder killed mid-fragment): runs whose
//! data lies past the end of the file are dropped, with every run after
//! them, so the result is every run whose data is whole up to the cut.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::fmp4::{boxed, full, MATRIX};

/// Why a file cannot be made plain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// A box's size is smaller than its header or runs past its parent.
    #[error("a {0} box has a bad size")]
    BadBox(String),
    /// A box is shorter than the fields it must have.
    #[error("the {0} box is cut short")]
    Short(&'static str),
    /// No `moov`, or one without tracks, before the first fragment.
    #[error("no movie header with tracks before the fragments")]
    NoMovie,
    /// A fragment names a track the movie header does not have.
    #[error("a fragment names track {0}, which the movie does not have")]
    UnknownTrack(u32),
    /// No whole sample in the file.
    #[error("the file holds no whole sample")]
    NoSamples,
}

/// A top-level box's header: its four-character type, the header's length
/// and the box's whole length (`None`: to the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The type, such as `moof`.
    pub kind: [u8; 4],
    /// 8, or 16 with a 64-bit size.
    pub header_len: u64,
    /// The whole box, header included; `None` when it runs to the end.
    pub len: Option<u64>,
}

/// Reads a box header from the start of `data` (at least 16 bytes, or what
/// is left of the file). `Ok(None)`: fewer bytes than a header.
pub fn box_header(data: &[u8]) -> Result<Option<BoxHeader>, Mp4Error> {
    if data.len() < 8 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let kind = [data[4], data[5], data[6], data[7]];
    let name = || String::from_utf8_lossy(&kind).into_owned();
    match size {
        0 => Ok(Some(BoxHeader {
            kind,
            header_len: 8,
            len: None,
        })),
        1 => {
            let Some(large) = data.get(8..16) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(large.try_into().map_err(|_| Mp4Error::Short("box"))?);
            if len < 16 {
                return Err(Mp4Error::BadBox(name()));
            }
            Ok(Some(BoxHeader {
                kind,
                header_len: 16,
                len: Some(len),
            }))
        }
        2..=7 => Err(Mp4Error::BadBox(name())),
        n => Ok(Some(BoxHeader {
            kind,
            header_len: 8,
            len: Some(u64::from(n)),
        })),
    }
}

/// The children of a box body: (type, body) pairs.
fn children(mut data: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), Mp4Error>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let header = match box_header(data) {
            Ok(Some(h)) => h,
            Ok(None) => {
                data = &[];
                return Some(Err(Mp4Error::Short("child")));
            }
            Err(e) => {
                data = &[];
                return Some(Err(e));
            }
        };
        let len = header.len.unwrap_or(data.len() as u64);
        if len > data.len() as u64 || len < header.header_len {
            let name = String::from_utf8_lossy(&header.kind).into_owned();
            data = &[];
            return Some(Err(Mp4Error::BadBox(name)));
        }
        let (whole, rest) = data.split_at(len as usize);
        data = rest;
        Some(Ok((header.kind, &whole[header.header_len as usize..])))
    })
}

/// A cursor over a box body's fields.
struct Fields<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Fields { data, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        if self.data.len() < n {
            return Err(Mp4Error::Short(self.what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, Mp4Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Mp4Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Mp4Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }
}

/// What the movie header says of one track.
#[derive(Debug, Clone, Default)]
struct TrackInfo {
    id: u32,
    timescale: u32,
    volume: u16,
    width: u32,
    height: u32,
    language: u16,
    /// The `hdlr` box, whole.
    hdlr: Bytes,
    /// `vmhd` or `smhd` (or another media header), whole.
    media_header: Bytes,
    /// The `stsd` box, whole.
    stsd: Bytes,
    /// `trex` defaults: duration, size, flags.
    defaults: (u32, u32, u32),
}

/// One sample of the plain file.
#[derive(Debug, Clone, Copy)]
struct SampleMeta {
    size: u32,
    duration: u32,
    composition_offset: i32,
    sync: bool,
}

/// A run of one track's samples, contiguous in the source: a chunk of the
/// plain file.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    track: u32,
    source: u64,
    len: u64,
    /// The run's first sample in its track's list, and how many.
    first: usize,
    count: usize,
}

#[derive(Debug, Default)]
struct TrackSamples {
    samples: Vec<SampleMeta>,
    /// The first run's decode time, in the track's timescale.
    start: Option<u64>,
    /// Where the samples so far end, in the track's timescale.
    end: u64,
}

/// Collects a fragmented file's boxes; [`Faststart::finish`] plans the
/// plain file.
#[derive(Debug, Default)]
pub struct Faststart {
    ftyp: Option<Bytes>,
    tracks: Vec<TrackInfo>,
    samples: BTreeMap<u32, TrackSamples>,
    chunks: Vec<Chunk>,
}

/// The plain file: `header`, then the source's bytes at each of `copies`
/// (offset, length), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `ftyp`, `moov` and the `mdat` header.
    pub header: Bytes,
    /// The sample data to copy from the source after the header.
    pub copies: Vec<(u64, u64)>,
    /// The longest track, in milliseconds.
    pub duration_ms: u64,
}

/// `sample_is_non_sync_sample` in the sample flags.
const NON_SYNC: u32 = 0x0001_0000;

impl Faststart {
    /// Nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one top-level box, whole (`offset`: where it starts in the
    /// file). Only `ftyp`, `moov` and `moof` are read; a caller may skip
    /// the others (`mdat`, `sidx`, `mfra`, …) without reading them.
    pub fn push_box(&mut self, kind: [u8; 4], offset: u64, data: &[u8]) -> Result<(), Mp4Error> {
        let header = box_header(data)?.ok_or(Mp4Error::Short("box"))?;
        let body = &data[(header.header_len as usize).min(data.len())..];
        match &kind {
            b"ftyp" => self.ftyp = Some(Bytes::copy_from_slice(data)),
            b"moov" => self.moov(body)?,
            b"moof" => self.moof(offset, body)?,
            _ => {}
        }
        Ok(())
    }

    fn moov(&mut self, body: &[u8]) -> Result<(), Mp4Error> {
        let mut tracks = Vec::new();
        let mut trex = BTreeMap::new();
        for child in children(body) {
            let (kind, body) = child?;
            match &kind {
                b"trak" => tracks.push(trak(body)?),
                b"mvex" => {
                    for child in children(body) {
                        let (kind, body) = child?;
                        if &kind == b"trex" {
                            let mut f = Fields::new(body, "trex");
                            f.full()?;
                            let id = f.u32()?;
                            f.u32()?;
                            trex.insert(id, (f.u32()?, f.u32()?, f.u32()?));
                        }
                    }
                }
                _ => {}
            }
        }
        for t in &mut tracks {
            if let Some(d) = trex.get(&t.id) {
                t.defaults = *d;
            }
        }
        self.tracks = tracks;
        Ok(())
    }

    fn moof(&mut self, offset: u64, body: &[u8]) -> Result<(), Mp4Error> {
        if self.tracks.is_empty() {
            return Err(Mp4Error::NoMovie);
        }
        // Where the previous traf's data ended: the base of a traf without
        // an explicit one or default-base-is-moof (ISO/IEC 14496-12 8.8.7).
        let mut previous_end = offset;
        for child in children(body) {
            let (kind, body) = child?;
            if &kind == b"traf" {
                previous_end = self.traf(offset, previous_end, body)?;
            }
        }
        Ok(())
    }

    /// Reads one `traf`; returns where its data ends.
    fn traf(&mut self, moof: u64, previous_end: u64, body: &[u8]) -> Result<u64, Mp4Error> {
        let mut tfhd = None;
        let mut decode_time = None;
        let mut runs = Vec::new();
        for child in children(body) {
            let (kind, body) = child?;
            match &kind {
                b"tfhd" => tfhd = Some(body),
                b"tfdt" => {
                    let mut f = Fields::new(body, "tfdt");
                    let (version, _) = f.full()?;
                    decode_time = Some(if version == 1 {
                        f.u64()?
                    } else {
                        u64::from(f.u32()?)
                    });
                }
                b"trun" => runs.push(body),
                _ => {}
            }
        }
        let mut f = Fields::new(tfhd.ok_or(Mp4Error::Short("traf"))?, "tfhd");
        let (_, flags) = f.full()?;
        let id = f.u32()?;
        let info = self
            .tracks
            .iter()
            .find(|t| t.id == id)
            .ok_or(Mp4Error::UnknownTrack(id))?;
        let (mut duration, mut size, mut sample_flags) = info.defaults;
        let mut base = if flags & 0x02_0000 != 0 {
            moof
        } else {
            previous_end
        };
        if flags & 0x01 != 0 {
            base = f.u64()?;
        }
        if flags & 0x02 != 0 {
            f.u32()?;
        }
        if flags & 0x08 != 0 {
            duration = f.u32()?;
        }
        if flags & 0x10 != 0 {
            size = f.u32()?;
        }
        if flags & 0x20 != 0 {
            sample_flags = f.u32()?;
        }
        let track = self.samples.entry(id).or_default();
        if let Some(t) = decode_time {
            match track.samples.last_mut() {
                None => {
                    track.start = Some(t);
                    track.end = t;
                }
                // A gap in the track (a dropout, a cut guessed short): the
                // sample before it lasts until the next one starts.
                Some(last) if t > track.end => {
                    let gap = u32::try_from(t - track.end).unwrap_or(u32::MAX);
                    last.duration = last.duration.saturating_add(gap);
                    track.end = t;
                }
                Some(_) => {}
            }
        }
        let mut at = base;
        for run in runs {
            let mut f = Fields::new(run, "trun");
            let (_, flags) = f.full()?;
            let count = f.u32()? as usize;
            if flags & 0x01 != 0 {
                at = base.wrapping_add_signed(i64::from(f.u32()? as i32));
            }
            let first_flags = if flags & 0x04 != 0 {
                Some(f.u32()?)
            } else {
                None
            };
            let per_sample = 4 * (flags & 0xF00).count_ones() as usize;
            if per_sample > 0 && count > f.data.len() / per_sample {
                return Err(Mp4Error::Short("trun"));
            }
            if per_sample == 0 && count > (1 << 20) {
                return Err(Mp4Error::Short("trun"));
            }
            let first = track.samples.len();
            let mut len = 0u64;
            track.samples.reserve(count);
            for i in 0..count {
                let d = if flags & 0x100 != 0 {
                    f.u32()?
                } else {
                    duration
                };
                let s = if flags & 0x200 != 0 { f.u32()? } else { size };
                let mut fl = if flags & 0x400 != 0 {
                    f.u32()?
                } else {
                    sample_flags
                };
                if i == 0 {
                    if let Some(first) = first_flags {
                        fl = first;
                    }
                }
                let cto = if flags & 0x800 != 0 {
                    f.u32()? as i32
                } else {
                    0
                };
                track.samples.push(SampleMeta {
                    size: s,
                    duration: d,
                    composition_offset: cto,
                    sync: fl & NON_SYNC == 0,
                });
                track.end = track.end.saturating_add(u64::from(d));
                len += u64::from(s);
            }
            if count > 0 {
                self.chunks.push(Chunk {
                    track: id,
                    source: at,
                    len,
                    first,
                    count,
                });
            }
            at = at.saturating_add(len);
        }
        Ok(at)
    }

    /// Plans the plain file of a source `file_len` bytes long.
    pub fn finish(mut self, file_len: u64) -> Result<Plan, Mp4Error> {
        // Runs past the end (a file cut short) go, with everything after.
        if let Some(cut) = self
            .chunks
            .iter()
            .position(|c| c.source.checked_add(c.len).is_none_or(|end| end > file_len))
        {
            for c in &self.chunks[cut..] {
                if let Some(t) = self.samples.get_mut(&c.track) {
                    t.samples.truncate(t.samples.len().min(c.first));
                }
            }
            self.chunks.truncate(cut);
        }
        let tracks: Vec<&TrackInfo> = self
            .tracks
            .iter()
            .filter(|t| {
                self.samples
                    .get(&t.id)
                    .is_some_and(|s| !s.samples.is_empty())
            })
            .collect();
        if tracks.is_empty() {
            return Err(Mp4Error::NoSamples);
        }
        let ftyp = self.ftyp.clone().unwrap_or_else(default_ftyp);
        let data_len: u64 = self.chunks.iter().map(|c| c.len).sum();
        let mdat_header_len = if data_len + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        };
        let probe = self.plain_moov(&tracks, 0);
        let base = ftyp.len() as u64 + probe.len() as u64 + mdat_header_len;
        let moov = self.plain_moov(&tracks, base);
        let mut header = BytesMut::with_capacity(ftyp.len() + moov.len() + 16);
        header.put_slice(&ftyp);
        header.put_slice(&moov);
        if mdat_header_len == 16 {
            header.put_u32(1);
            header.put_slice(b"mdat");
            header.put_u64(data_len + 16);
        } else {
            header.put_u32((data_len + 8) as u32);
            header.put_slice(b"mdat");
        }
        let mut copies: Vec<(u64, u64)> = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            match copies.last_mut() {
                Some(last) if last.0 + last.1 == c.source => last.1 += c.len,
                _ => copies.push((c.source, c.len)),
            }
        }
        let duration_ms = tracks
            .iter()
            .map(|t| self.track_duration_ms(t))
            .max()
            .unwrap_or(0);
        Ok(Plan {
            header: header.freeze(),
            copies,
            duration_ms,
        })
    }

    fn media_duration(&self, t: &TrackInfo) -> u64 {
        self.samples
            .get(&t.id)
            .map_or(0, |s| s.samples.iter().map(|s| u64::from(s.duration)).sum())
    }

    fn track_duration_ms(&self, t: &TrackInfo) -> u64 {
        to_ms(self.media_duration(t), t.timescale)
    }

    /// The track's start, in milliseconds on the fragments' timeline.
    fn start_ms(&self, t: &TrackInfo) -> u64 {
        to_ms(
            self.samples.get(&t.id).and_then(|s| s.start).unwrap_or(0),
            t.timescale,
        )
    }

    /// The `moov` with chunk offsets from `base` (where the first copied
    /// byte lands).
    fn plain_moov(&self, tracks: &[&TrackInfo], base: u64) -> Bytes {
        let mut o = BytesMut::with_capacity(4096);
        let duration = tracks
            .iter()
            .map(|t| self.track_duration_ms(t))
            .max()
            .unwrap_or(0);
        let first = tracks.iter().map(|t| self.start_ms(t)).min().unwrap_or(0);
        // Each chunk's offset in the plain file.
        let mut offsets: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut at = base;
        for c in &self.chunks {
            offsets.entry(c.track).or_default().push(at);
            at += c.len;
        }
        boxed(&mut o, b"moov", |o| {
            let long = duration > u64::from(u32::MAX);
            full(o, b"mvhd", u8::from(long), 0, |o| {
                times(o, long);
                o.put_u32(MOVIE_TIMESCALE);
                put_duration(o, long, duration);
                o.put_u32(0x0001_0000);
                o.put_u16(0x0100);
                o.put_slice(&[0; 10]);
                MATRIX.iter().for_each(|m| o.put_u32(*m));
                o.put_slice(&[0; 24]);
                o.put_u32(
                    tracks
                        .iter()
                        .map(|t| t.id)
                        .max()
                        .unwrap_or(0)
                        .saturating_add(1),
                );
            });
            for t in tracks {
                let empty = Vec::new();
                let samples = self.samples.get(&t.id).map_or(&empty, |s| &s.samples);
                let chunks: Vec<&Chunk> = self.chunks.iter().filter(|c| c.track == t.id).collect();
                let offsets = offsets.get(&t.id).map_or(&[][..], |v| &v[..]);
                let delay = self.start_ms(t).saturating_sub(first);
                self.trak(o, t, samples, &chunks, offsets, delay);
            }
        });
        o.freeze()
    }

    fn trak(
        &self,
        o: &mut BytesMut,
        t: &TrackInfo,
        samples: &[SampleMeta],
        chunks: &[&Chunk],
        offsets: &[u64],
        delay_ms: u64,
    ) {
        let media_duration = self.media_duration(t);
        let duration_ms = to_ms(media_duration, t.timescale);
        let first_cto = samples.first().map_or(0, |s| s.composition_offset.max(0));
        boxed(o, b"trak", |o| {
            let long = duration_ms + delay_ms > u64::from(u32::MAX);
            full(o, b"tkhd", u8::from(long), 3, |o| {
                times(o, long);
                o.put_u32(t.id);
                o.put_u32(0);
                put_duration(o, long, duration_ms + delay_ms);
                o.put_slice(&[0; 8]);
                o.put_u16(0);
                o.put_u16(0);
                o.put_u16(t.volume);
                o.put_u16(0);
                MATRIX.iter().for_each(|m| o.put_u32(*m));
                o.put_u32(t.width);
                o.put_u32(t.height);
            });
            if delay_ms > 0 || first_cto > 0 {
                boxed(o, b"edts", |o| {
                    let long = duration_ms + delay_ms > u64::from(u32::MAX)
                        || media_duration > u64::from(u32::MAX);
                    let entries = 1 + u32::from(delay_ms > 0);
                    full(o, b"elst", u8::from(long), 0, |o| {
                        o.put_u32(entries);
                        let mut edit = |duration: u64, media_time: i64| {
                            if long {
                                o.put_u64(duration);
                                o.put_i64(media_time);
                            } else {
                                o.put_u32(duration as u32);
                                o.put_i32(media_time as i32);
                            }
                            o.put_u32(0x0001_0000);
                        };
                        if delay_ms > 0 {
                            edit(delay_ms, -1);
                        }
                        edit(duration_ms, i64::from(first_cto));
                    });
                });
            }
            boxed(o, b"mdia", |o| {
                let long = media_duration > u64::from(u32::MAX);
                full(o, b"mdhd", u8::from(long), 0, |o| {
                    times(o, long);
                    o.put_u32(t.timescale);
                    put_duration(o, long, media_duration);
                    o.put_u16(t.language);
                    o.put_u16(0);
                });
                o.put_slice(&t.hdlr);
                boxed(o, b"minf", |o| {
                    o.put_slice(&t.media_header);
                    boxed(o, b"dinf", |o| {
                        full(o, b"dref", 0, 0, |o| {
                            o.put_u32(1);
                            full(o, b"url ", 0, 1, |_| {});
                        });
                    });
                    boxed(o, b"stbl", |o| {
                        o.put_slice(&t.stsd);
                        sample_tables(o, samples, chunks, offsets);
                    });
                });
            });
        });
    }
}

/// `stts`, `ctts`, `stss`, `stsz`, `stsc` and `co64` of one track.
fn sample_tables(o: &mut BytesMut, samples: &[SampleMeta], chunks: &[&Chunk], offsets: &[u64]) {
    let runs = |key: &dyn Fn(&SampleMeta) -> i64| {
        let mut out: Vec<(u32, i64)> = Vec::new();
        for s in samples {
            let k = key(s);
            match out.last_mut() {
                Some((n, v)) if *v == k => *n += 1,
                _ => out.push((1, k)),
            }
        }
        out
    };
    let stts = runs(&|s| i64::from(s.duration));
    full(o, b"stts", 0, 0, |o| {
        o.put_u32(stts.len() as u32);
        for (n, d) in &stts {
            o.put_u32(*n);
            o.put_u32(*d as u32);
        }
    });
    if samples.iter().any(|s| s.composition_offset != 0) {
        let ctts = runs(&|s| i64::from(s.composition_offset));
        let negative = ctts.iter().any(|(_, v)| *v < 0);
        full(o, b"ctts", u8::from(negative), 0, |o| {
            o.put_u32(ctts.len() as u32);
            for (n, v) in &ctts {
                o.put_u32(*n);
                o.put_u32(*v as i32 as u32);
            }
        });
    }
    if samples.iter().any(|s| !s.sync) {
        let sync: Vec<u32> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        full(o, b"stss", 0, 0, |o| {
            o.put_u32(sync.len() as u32);
            sync.iter().for_each(|n| o.put_u32(*n));
        });
    }
    full(o, b"stsz", 0, 0, |o| {
        o.put_u32(0);
        o.put_u32(samples.len() as u32);
        samples.iter().for_each(|s| o.put_u32(s.size));
    });
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let count = c.count as u32;
        if stsc.last().is_none_or(|(_, n)| *n != count) {
            stsc.push((i as u32 + 1, count));
        }
    }
    full(o, b"stsc", 0, 0, |o| {
        o.put_u32(stsc.len() as u32);
        for (first, n) in &stsc {
            o.put_u32(*first);
            o.put_u32(*n);
            o.put_u32(1);
        }
    });
    full(o, b"co64", 0, 0, |o| {
        o.put_u32(offsets.len() as u32);
        offsets.iter().for_each(|at| o.put_u64(*at));
    });
}

/// Reads what a `trak` says of its track.
fn trak(body: &[u8]) -> Result<TrackInfo, Mp4Error> {
    let mut t = TrackInfo::default();
    for child in children(body) {
        let (kind, body) = child?;
        match &kind {
            b"tkhd" => {
                let mut f = Fields::new(body, "tkhd");
                let (version, _) = f.full()?;
                if version == 1 {
                    f.take(16)?;
                    t.id = f.u32()?;
                    f.take(12)?;
                } else {
                    f.take(8)?;
                    t.id = f.u32()?;
                    f.take(8)?;
                }
                f.take(12)?;
                t.volume = f.u16()?;
                f.take(2 + 36)?;
                t.width = f.u32()?;
                t.height = f.u32()?;
            }
            b"mdia" => mdia(&mut t, body)?,
            _ => {}
        }
    }
    if t.timescale == 0 || t.stsd.is_empty() || t.hdlr.is_empty() {
        return Err(Mp4Error::Short("trak"));
    }
    Ok(t)
}

fn mdia(t: &mut TrackInfo, body: &[u8]) -> Result<(), Mp4Error> {
    for child in children(body) {
        let (kind, inner) = child?;
        match &kind {
            b"mdhd" => {
                let mut f = Fields::new(inner, "mdhd");
                let (version, _) = f.full()?;
                f.take(if version == 1 { 16 } else { 8 })?;
                t.timescale = f.u32()?;
                f.take(if version == 1 { 8 } else { 4 })?;
                t.language = f.u16()?;
            }
            b"hdlr" => t.hdlr = rebox(b"hdlr", inner),
            b"minf" => {
                for child in children(inner) {
                    let (kind, inner) = child?;
                    match &kind {
                        b"vmhd" | b"smhd" | b"sthd" | b"nmhd" => {
                            t.media_header = rebox(&kind, inner);
                        }
                        b"stbl" => {
                            for child in children(inner) {
                                let (kind, inner) = child?;
                                if &kind == b"stsd" {
                                    t.stsd = rebox(b"stsd", inner);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // A 16-bit field cut short is no reason to refuse: "und".
    if t.language == 0 {
        t.language = 0x55C4;
    }
    Ok(())
}

/// A box of `kind` around `body`.
fn rebox(kind: &[u8; 4], body: &[u8]) -> Bytes {
    let mut o = BytesMut::with_capacity(body.len() + 8);
    boxed(&mut o, kind, |o| o.put_slice(body));
    o.freeze()
}

fn default_ftyp() -> Bytes {
    let mut o = BytesMut::new();
    boxed(&mut o, b"ftyp", |o| {
        o.put_slice(b"isom");
        o.put_u32(0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            o.put_slice(brand);
        }
    });
    o.freeze()
}

/// The plain file's movie timescale: milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

fn to_ms(ticks: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    (u128::from(ticks) * 1000 / u128::from(timescale)).min(u128::from(u64::MAX)) as u64
}

/// Creation and modification times (zero).
fn times(o: &mut BytesMut, long: bool) {
    if long {
        o.put_u64(0);
        o.put_u64(0);
    } else {
        o.put_u32(0);
        o.put_u32(0);
    }
}

fn put_duration(o: &mut BytesMut, long: bool, d: u64) {
    if long {
        o.put_u64(d);
    } else {
        o.put_u32(d as u32);
    }
}

/// Plans the plain form of a fragmented file held in memory (for tests
/// and the fuzz target; the recorder reads files box by box instead).
pub fn faststart_bytes(file: &[u8]) -> Result<Plan, Mp4Error> {
    let mut f = Faststart::new();
    let mut at = 0usize;
    while at < file.len() {
        let Some(h) = box_header(&file[at..])? else {
            break;
        };
        let len = h.len.unwrap_or((file.len() - at) as u64);
        let end = (at as u64).saturating_add(len).min(file.len() as u64) as usize;
        if matches!(&h.kind, b"ftyp" | b"moov" | b"moof") {
            if (at as u64).saturating_add(len) > file.len() as u64 {
                // A header box cut short: the file ends before it.
                break;
            }
            f.push_box(h.kind, at as u64, &file[at..end])?;
        }
        at = end;
    }
    f.finish(file.len() as u64)
}

/// The plain file `plan` describes, from the source `file` in memory.
pub fn assemble(plan: &Plan, file: &[u8]) -> Vec<u8> {
    let mut out = plan.header.to_vec();
    for (at, len) in &plan.copies {
        let start = (*at as usize).min(file.len());
        let end = (at + len).min(file.len() as u64) as usize;
        out.extend_from_slice(&file[start..end.max(start)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::tests::tracks;
    use crate::fmp4::{self, Run, Sample, AUDIO_TRACK, VIDEO_TRACK};

    fn sample(duration: u32, cto: i32, sync: bool, fill: u8, len: usize) -> Sample {
        Sample {
            duration,
            composition_offset: cto,
            sync,
            data: Bytes::from(vec![fill; len]),
        }
    }

    /// Two fragments of video (a keyframe then a P frame each) and audio.
    fn fragmented() -> (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut file = fmp4::init_segment(&tracks()).to_vec();
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for n in 0..2u8 {
            let v = [
                sample(40, 80, true, 0x10 + n, 100),
                sample(40, 0, false, 0x20 + n, 30),
            ];
            let a = [
                sample(23, 0, true, 0x30 + n, 10),
                sample(23, 0, true, 0x40 + n, 11),
            ];
            video.extend(v.iter().map(|s| s.data.to_vec()));
            audio.extend(a.iter().map(|s| s.data.to_vec()));
            file.extend_from_slice(&fmp4::fragment(
                u32::from(n) + 1,
                &[
                    Run {
                        track: VIDEO_TRACK,
                        decode_time: 1000 + 80 * u64::from(n),
                        samples: &v,
                    },
                    Run {
                        track: AUDIO_TRACK,
                        decode_time: 1020 + 46 * u64::from(n),
                        samples: &a,
                    },
                ],
            ));
        }
        (file, video, audio)
    }

    /// The body of the first box of `kind` anywhere below `data` (a
    /// depth-first walk through the container boxes the plain file has).
    fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        for child in children(data) {
            let (kind, body) = child.expect("well-formed");
            if &kind == path[0] {
                if path.len() == 1 {
                    out.push(body);
                } else {
                    out.extend(find(body, &path[1..]));
                }
            }
        }
        out
    }

    /// Every 32-bit word of `body` from byte `from` on.
    fn table(body: &[u8], from: usize) -> Vec<u32> {
        body[from..]
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_fragmented_file_becomes_moov_first_with_every_sample_where_its_table_says() {
        let (file, video, audio) = fragmented();
        let plan = faststart_bytes(&file).expect("plan");
        let plain = assemble(&plan, &file);
        let top: Vec<[u8; 4]> = children(&plain).map(|c| c.expect("box").0).collect();
        assert_eq!(top, [*b"ftyp", *b"moov", *b"mdat"]);
        assert!(find(&plain, &[b"moov", b"mvex"]).is_empty(), "no mvex left");
        let traks = find(&plain, &[b"moov", b"trak"]);
        assert_eq!(traks.len(), 2);
        for (trak, expected) in traks.iter().zip([&video, &audio]) {
            let stbl = find(trak, &[b"mdia", b"minf", b"stbl"])[0];
            let sizes = table(find(stbl, &[b"stsz"])[0], 12);
            assert_eq!(
                sizes,
                expected.iter().map(|s| s.len() as u32).collect::<Vec<_>>()
            );
            let co64 = find(stbl, &[b"co64"])[0];
            let chunks = u32::from_be_bytes(co64[4..8].try_into().unwrap()) as usize;
            assert_eq!(chunks, 2, "one chunk per fragment");
            // Two samples per chunk: each sample's bytes are where the
            // chunk offset plus the sizes before it say.
            let mut i = 0;
            for c in 0..chunks {
                let mut at =
                    u64::from_be_bytes(co64[8 + 8 * c..16 + 8 * c].try_into().unwrap()) as usize;
                for _ in 0..2 {
                    assert_eq!(&plain[at..at + expected[i].len()], &expected[i][..]);
                    at += expected[i].len();
                    i += 1;
                }
            }
        }
        // Video: keyframes are samples 1 and 3; durations 40 ms; the
        // first composition offset becomes the edit's media time.
        let video_trak = traks[0];
        let stbl = find(video_trak, &[b"mdia", b"minf", b"stbl"])[0];
        assert_eq!(table(find(stbl, &[b"stss"])[0], 8), [1, 3]);
        assert_eq!(table(find(stbl, &[b"stts"])[0], 8), [4, 40]);
        let elst = find(video_trak, &[b"edts", b"elst"])[0];
        assert_eq!(table(elst, 8), [160, 80, 0x0001_0000]);
        // Audio starts 20 ms after video: an empty edit first.
        let elst = find(traks[1], &[b"edts", b"elst"])[0];
        assert_eq!(table(elst, 8)[..3], [20, u32::MAX, 0x0001_0000]);
        assert_eq!(plan.duration_ms, 160);
        assert!(
            find(traks[1], &[b"mdia", b"minf", b"stbl", b"stss"]).is_empty(),
            "every audio sample is a sync sample"
        );
    }

    #[test]
    fn a_file_cut_inside_its_last_fragment_keeps_every_run_whose_data_is_whole() {
        let (file, video, audio) = fragmented();
        // The last fragment's audio run is cut; its video run is whole.
        let cut = &file[..file.len() - 5];
        let plan = faststart_bytes(cut).expect("plan");
        let plain = assemble(&plan, cut);
        let traks = find(&plain, &[b"moov", b"trak"]);
        let sizes = |trak: &[u8]| {
            let stbl = find(trak, &[b"mdia", b"minf", b"stbl"])[0];
            table(find(stbl, &[b"stsz"])[0], 12).len()
        };
        assert_eq!(sizes(traks[0]), video.len());
        assert_eq!(sizes(traks[1]), audio.len() / 2);
        assert_eq!(plan.duration_ms, 160);
        assert_eq!(
            plain.len() as u64,
            plan.header.len() as u64 + plan.copies.iter().map(|c| c.1).sum::<u64>()
        );
    }

    #[test]
    fn a_file_without_a_whole_fragment_or_movie_is_refused() {
        let init = fmp4::init_segment(&tracks());
        assert_eq!(faststart_bytes(&init), Err(Mp4Error::NoSamples));
        let (file, _, _) = fragmented();
        let fragments = &file[init.len()..];
        assert_eq!(faststart_bytes(fragments), Err(Mp4Error::NoMovie));
        assert!(faststart_bytes(b"\0\0\0\x04junk").is_err());
    }
}
