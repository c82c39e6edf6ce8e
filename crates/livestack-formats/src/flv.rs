//! FLV: the file header, tags, a streaming demuxer and tag-body parsing.
//!
//! Owns: the FLV byte layout (9-byte header, 11-byte tag header, 4-byte
//! `PreviousTagSize` trailer) in both directions, and the first bytes of
//! audio and video tag bodies (`body`), which RTMP messages share with FLV.
//! Must not: do I/O, interpret codec payloads beyond the tag-body header
//! (that is `avc`, `hevc` and `aac`), or panic on any input.
//!
//! The encoder produces each tag as one contiguous [`Bytes`] so a server can
//! encode a frame once and hand clones of it to every HTTP-FLV player.

mod body;

pub use body::{
    AudioCodec, AudioInfo, AudioPacketType, FrameType, VideoCodecId, VideoInfo, VideoPacketType,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes in the FLV file header, before `PreviousTagSize0`.
pub const HEADER_LEN: usize = 9;
/// Bytes in a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Bytes in the `PreviousTagSize` trailer after each tag.
pub const TAG_TRAILER_LEN: usize = 4;
/// The largest tag body the 24-bit `DataSize` field can describe.
pub const MAX_TAG_DATA_LEN: usize = 0xFF_FFFF;
/// The largest `DataOffset` the reader accepts in a file header; real files
/// always use 9, a few tools append a little more.
const MAX_HEADER_DATA_OFFSET: u32 = 1 << 16;

/// What can go wrong reading or writing FLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The stream does not start with `FLV`.
    #[error("not an FLV stream: bad signature")]
    BadSignature,
    /// The header's `DataOffset` is smaller than the header or absurdly large.
    #[error("FLV header data offset {0} is out of range")]
    BadDataOffset(u32),
    /// A tag type other than audio (8), video (9) or script data (18).
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
    /// The tag has the `Filter` bit set (encrypted content), which is not supported.
    #[error("encrypted (filtered) FLV tags are not supported")]
    FilteredTag,
    /// A tag body is larger than the limit the reader was given.
    #[error("FLV tag of {size} bytes exceeds the limit of {limit} bytes")]
    TagTooLarge {
        /// The tag body size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A tag body is too short for the header its type requires.
    #[error("{what} tag body is truncated")]
    TruncatedBody {
        /// Which kind of body ("video", "audio").
        what: &'static str,
    },
}

/// The kind of an FLV tag, with its on-wire `TagType` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TagKind {
    /// Audio data (8).
    Audio = 8,
    /// Video data (9).
    Video = 9,
    /// AMF0 script data such as `onMetaData` (18).
    Script = 18,
}

impl TagKind {
    /// The kind for a `TagType` value (the low five bits of the first tag byte).
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            8 => Some(Self::Audio),
            9 => Some(Self::Video),
            18 => Some(Self::Script),
            _ => None,
        }
    }
}

/// One demuxed FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: TagKind,
    /// The 32-bit timestamp in milliseconds (with the extended byte applied).
    pub timestamp_ms: u32,
    /// The tag body, exactly as an RTMP message of the same type carries it.
    pub payload: Bytes,
}

/// The flags of an FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// The version byte (1 in every known file).
    pub version: u8,
    /// `TypeFlagsAudio`.
    pub has_audio: bool,
    /// `TypeFlagsVideo`.
    pub has_video: bool,
}

/// The FLV file header and `PreviousTagSize0`: 13 bytes to send before the
/// first tag.
pub fn encode_header(has_audio: bool, has_video: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + TAG_TRAILER_LEN);
    out.put_slice(b"FLV");
    out.put_u8(1);
    out.put_u8(if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 });
    out.put_u32(HEADER_LEN as u32);
    out.put_u32(0);
    out.freeze()
}

/// One complete tag: the 11-byte header (with the extended timestamp byte),
/// the payload and the 4-byte `PreviousTagSize`, in a single allocation.
///
/// Fails only when the payload is longer than [`MAX_TAG_DATA_LEN`], which an
/// RTMP message (24-bit length) never is.
pub fn encode_tag(kind: TagKind, timestamp_ms: u32, payload: &[u8]) -> Result<Bytes, FlvError> {
    let mut out = BytesMut::with_capacity(TAG_HEADER_LEN + payload.len() + TAG_TRAILER_LEN);
    encode_tag_into(kind, timestamp_ms, payload, &mut out)?;
    Ok(out.freeze())
}

/// Appends one complete tag to `out`, for callers that batch several tags
/// into one buffer. Same layout and limit as [`encode_tag`].
pub fn encode_tag_into(
    kind: TagKind,
    timestamp_ms: u32,
    payload: &[u8],
    out: &mut BytesMut,
) -> Result<(), FlvError> {
    if payload.len() > MAX_TAG_DATA_LEN {
        return Err(FlvError::TagTooLarge {
            size: payload.len(),
            limit: MAX_TAG_DATA_LEN,
        });
    }
    out.reserve(TAG_HEADER_LEN + payload.len() + TAG_TRAILER_LEN);
    let len = payload.len() as u32;
    out.put_u8(kind as u8);
    put_u24(out, len);
    put_u24(out, timestamp_ms & 0xFF_FFFF);
    out.put_u8((timestamp_ms >> 24) as u8);
    put_u24(out, 0); // StreamID, always 0.
    out.put_slice(payload);
    out.put_u32(TAG_HEADER_LEN as u32 + len);
    Ok(())
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_u8((v >> 16) as u8);
    out.put_u8((v >> 8) as u8);
    out.put_u8(v as u8);
}

fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// Where the reader is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the file header.
    Header,
    /// Skipping `n` more bytes up to `DataOffset` and `PreviousTagSize0`.
    Skip(usize),
    /// Reading tags.
    Tags,
}

/// A push-based FLV demuxer: feed bytes with [`push`](Self::push), take
/// tags with [`next_tag`](Self::next_tag).
///
/// Tags are returned as soon as they are complete; a partial tag waits for
/// more input. Tag bodies are bounded by a size limit (16 MiB by default)
/// so a corrupt length cannot make the reader wait for gigabytes. After an
/// error the reader is stuck: every later call returns the same error.
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    header: Option<FlvHeader>,
    max_tag_len: usize,
    failed: Option<FlvError>,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    /// The default limit on a tag body: 16 MiB, the 24-bit field's range.
    pub const DEFAULT_MAX_TAG_LEN: usize = 16 * 1024 * 1024;

    /// A reader expecting an FLV file header first.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Header,
            header: None,
            max_tag_len: Self::DEFAULT_MAX_TAG_LEN,
            failed: None,
        }
    }

    /// A reader of bare tags (no file header), as some recorders store them.
    pub fn without_header() -> Self {
        Self {
            state: State::Tags,
            ..Self::new()
        }
    }

    /// Sets the largest tag body accepted; bigger tags are an error.
    pub fn with_max_tag_len(mut self, limit: usize) -> Self {
        self.max_tag_len = limit;
        self
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Bytes pushed but not yet consumed by a returned tag.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete tag, `Ok(None)` if more input is needed.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.step();
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn step(&mut self) -> Result<Option<Tag>, FlvError> {
        loop {
            match self.state {
                State::Header => {
                    if self.buf.len() < HEADER_LEN {
                        // Refuse a wrong signature as soon as it is visible.
                        if !b"FLV".starts_with(&self.buf[..self.buf.len().min(3)]) {
                            return Err(FlvError::BadSignature);
                        }
                        return Ok(None);
                    }
                    if &self.buf[..3] != b"FLV" {
                        return Err(FlvError::BadSignature);
                    }
                    let flags = self.buf[4];
                    let offset =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    if !(HEADER_LEN as u32..=MAX_HEADER_DATA_OFFSET).contains(&offset) {
                        return Err(FlvError::BadDataOffset(offset));
                    }
                    self.header = Some(FlvHeader {
                        version: self.buf[3],
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
                    });
                    self.buf.advance(HEADER_LEN);
                    // The range check above bounds the offset to 64 KiB.
                    self.state = State::Skip(offset as usize - HEADER_LEN + TAG_TRAILER_LEN);
                }
                State::Skip(n) => {
                    let take = n.min(self.buf.len());
                    self.buf.advance(take);
                    if take < n {
                        self.state = State::Skip(n - take);
                        return Ok(None);
                    }
                    self.state = State::Tags;
                }
                State::Tags => return self.read_tag(),
            }
        }
    }

    fn read_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        if self.buf.len() < TAG_HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..TAG_HEADER_LEN];
        if h[0] & 0x20 != 0 {
            return Err(FlvError::FilteredTag);
        }
        let kind = TagKind::from_u8(h[0] & 0x1F).ok_or(FlvError::UnknownTagType(h[0] & 0x1F))?;
        let size = u24(&h[1..4]) as usize;
        if size > self.max_tag_len {
            return Err(FlvError::TagTooLarge {
                size,
                limit: self.max_tag_len,
            });
        }
        let timestamp_ms = u24(&h[4..7]) | (u32::from(h[7]) << 24);
        let total = TAG_HEADER_LEN + size + TAG_TRAILER_LEN;
        if self.buf.len() < total {
            // Grow once to the whole tag instead of once per push.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let payload = self.buf.split_to(size).freeze();
        // PreviousTagSize is not checked: writers in the wild get it wrong
        // and the tag header alone frames the stream.
        self.buf.advance(TAG_TRAILER_LEN);
        Ok(Some(Tag {
            kind,
            timestamp_ms,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut FlvReader) -> Result<Vec<Tag>, FlvError> {
        let mut tags = Vec::new();
        while let Some(tag) = reader.next_tag()? {
            tags.push(tag);
        }
        Ok(tags)
    }

    #[test]
    fn the_header_has_the_flags_and_previous_tag_size_zero() {
        assert_eq!(
            &encode_header(true, true)[..],
            b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
        );
        assert_eq!(encode_header(false, true)[4], 0x01);
        assert_eq!(encode_header(true, false)[4], 0x04);
    }

    #[test]
    fn a_tag_carries_the_extended_timestamp_and_its_own_size_as_trailer() {
        let tag = encode_tag(TagKind::Video, 0x1234_5678, b"abc").unwrap();
        assert_eq!(
            &tag[..],
            b"\x09\x00\x00\x03\x34\x56\x78\x12\x00\x00\x00abc\x00\x00\x00\x0e"
        );
    }

    #[test]
    fn encoding_a_payload_larger_than_24_bits_fails() {
        let big = vec![0u8; MAX_TAG_DATA_LEN + 1];
        assert!(matches!(
            encode_tag(TagKind::Video, 0, &big),
            Err(FlvError::TagTooLarge { .. })
        ));
    }

    #[test]
    fn tags_written_are_read_back_byte_by_byte() {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&encode_header(true, true));
        let tags = [
            (TagKind::Script, 0, b"meta".to_vec()),
            (TagKind::Video, 0, vec![0x17, 0, 0, 0, 0]),
            (TagKind::Audio, 23, vec![0xAF, 1, 9]),
            (TagKind::Video, 0xFF00_0001, vec![]),
        ];
        for (kind, ts, body) in &tags {
            encode_tag_into(*kind, *ts, body, &mut stream).unwrap();
        }
        let mut reader = FlvReader::new();
        let mut got = Vec::new();
        for b in stream.iter() {
            reader.push(&[*b]);
            got.extend(read_all(&mut reader).unwrap());
        }
        assert_eq!(reader.buffered(), 0);
        assert_eq!(
            reader.header(),
            Some(FlvHeader {
                version: 1,
                has_audio: true,
                has_video: true
            })
        );
        let want: Vec<Tag> = tags
            .iter()
            .map(|(kind, ts, body)| Tag {
                kind: *kind,
                timestamp_ms: *ts,
                payload: Bytes::copy_from_slice(body),
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_wrong_signature_is_refused_before_the_header_is_complete() {
        let mut reader = FlvReader::new();
        reader.push(b"FX");
        assert_eq!(reader.next_tag(), Err(FlvError::BadSignature));
        // The reader stays failed.
        reader.push(b"V\x01\x05\x00\x00\x00\x09");
        assert_eq!(reader.next_tag(), Err(FlvError::BadSignature));
    }

    #[test]
    fn a_data_offset_past_the_header_is_skipped() {
        let mut reader = FlvReader::new();
        reader.push(b"FLV\x01\x01\x00\x00\x00\x0c");
        reader.push(b"xyz\x00\x00\x00\x00");
        reader.push(&encode_tag(TagKind::Audio, 5, b"a").unwrap());
        let tags = read_all(&mut reader).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].timestamp_ms, 5);
    }

    #[test]
    fn bad_tags_are_errors() {
        let cases: [(&[u8], FlvError); 4] = [
            (b"FLV\x01\x01\x00\x00\x00\x08", FlvError::BadDataOffset(8)),
            (
                b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                FlvError::UnknownTagType(7),
            ),
            (
                b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00\x29\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                FlvError::FilteredTag,
            ),
            (
                b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00\x09\x00\x10\x01\x00\x00\x00\x00\x00\x00\x00",
                FlvError::TagTooLarge {
                    size: 0x1001,
                    limit: 0x1000,
                },
            ),
        ];
        for (input, want) in cases {
            let mut reader = FlvReader::new().with_max_tag_len(0x1000);
            reader.push(input);
            assert_eq!(read_all(&mut reader), Err(want));
        }
    }

    #[test]
    fn a_headerless_reader_reads_bare_tags() {
        let mut reader = FlvReader::without_header();
        reader.push(&encode_tag(TagKind::Script, 1, b"x").unwrap());
        assert_eq!(read_all(&mut reader).unwrap().len(), 1);
    }
}
