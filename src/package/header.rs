//! The raw structure of an RPM up to its payload, checked before the `rpm`
//! crate sees a byte of it.
//!
//! Layout: a 96-byte lead; the signature header (16-byte intro, 16 bytes per
//! index entry, a data store) padded to 8 bytes; the main header (same shape,
//! unpadded); then the compressed payload up to the end of the file.
//!
//! The `rpm` crate trusts the index: a negative or out-of-range offset makes it
//! panic, and a huge item count makes it reserve gigabytes before noticing the
//! data is not there. So every index entry is bounded here first, and each
//! header is limited to [`MAX_HEADER_SIZE`].

use crate::bail_kind;
use crate::error::FailureKind;
use anyhow::{Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

pub const LEAD_SIZE: usize = 96;
/// Limit for each of the two headers (index plus data store).
pub const MAX_HEADER_SIZE: u64 = 64 << 20;
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
const INTRO_SIZE: usize = 16;
const ENTRY_SIZE: u64 = 16;
/// `RPMSIGTYPE_HEADERSIG`, the only signature type since rpm 3.
const SIGTYPE_HEADERSIG: u16 = 5;

/// The bytes before the payload and where things are in them.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Lead, signature header with its padding, and main header: exactly the
    /// bytes `[0, payload_start)` of the file.
    pub prefix: Vec<u8>,
    pub header_start: usize,
    pub payload_start: usize,
    /// The lead says "source package".
    pub source_lead: bool,
}

fn read_at(file: &File, buf: &mut [u8], offset: u64, file_len: u64, what: &str) -> Result<()> {
    if offset + buf.len() as u64 > file_len {
        bail_kind!(
            FailureKind::InvalidPackage,
            "truncated RPM: the file ends inside the {what} ({file_len} bytes)"
        );
    }
    match file.read_exact_at(buf, offset) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => bail_kind!(
            FailureKind::InvalidPackage,
            "truncated RPM: the file ends inside the {what}"
        ),
        r => r.with_context(|| format!("reading the RPM {what}")),
    }
}

/// Check a header's intro and index against its own bytes (`blob` is the
/// whole header: intro, index and data store). Pure; no I/O.
pub fn check_header_blob(blob: &[u8], what: &str) -> Result<()> {
    if blob.len() < INTRO_SIZE || blob[..4] != HEADER_MAGIC {
        bail_kind!(FailureKind::InvalidPackage, "corrupt RPM: bad {what} magic");
    }
    let (count, dlen) = intro_sizes(blob);
    let index_end = INTRO_SIZE as u64 + count * ENTRY_SIZE;
    if index_end + dlen != blob.len() as u64 {
        bail_kind!(
            FailureKind::InvalidPackage,
            "corrupt RPM: {what} size does not match its index"
        );
    }
    let data_len = dlen;
    for i in 0..count as usize {
        let e = &blob[INTRO_SIZE + i * 16..INTRO_SIZE + i * 16 + 16];
        let be = |o: usize| u32::from_be_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]);
        let (tag, ty, offset, items) = (be(0), be(4), be(8) as i32, be(12) as u64);
        let bad = |why: &str| -> anyhow::Error {
            crate::error::failure(
                FailureKind::InvalidPackage,
                format!("corrupt RPM: {what} index entry {i} (tag {tag}) {why}"),
            )
        };
        if offset < 0 || offset as u64 > data_len {
            return Err(bad("points outside the data store"));
        }
        let room = data_len - offset as u64;
        let needed = match ty {
            0 => 0,         // NULL
            1 | 2 => items, // CHAR, INT8
            3 => items * 2, // INT16
            4 => items * 4, // INT32
            5 => items * 8, // INT64
            6..=9 => {
                if ty == 6 && items != 1 {
                    return Err(bad("is a string with a count other than 1"));
                }
                // BIN: `items` bytes; strings: at least one NUL each.
                items
            }
            _ => return Err(bad(&format!("has the unknown data type {ty}"))),
        };
        if needed > room {
            return Err(bad("runs past the end of the data store"));
        }
    }
    Ok(())
}

fn intro_sizes(intro: &[u8]) -> (u64, u64) {
    let count = u32::from_be_bytes([intro[8], intro[9], intro[10], intro[11]]) as u64;
    let dlen = u32::from_be_bytes([intro[12], intro[13], intro[14], intro[15]]) as u64;
    (count, dlen)
}

/// Read one header starting at `offset`, append it to `prefix`, return its length.
fn read_header(
    file: &File,
    offset: u64,
    file_len: u64,
    what: &str,
    prefix: &mut Vec<u8>,
) -> Result<u64> {
    let mut intro = [0u8; INTRO_SIZE];
    read_at(file, &mut intro, offset, file_len, what)?;
    if intro[..4] != HEADER_MAGIC {
        bail_kind!(FailureKind::InvalidPackage, "corrupt RPM: bad {what} magic");
    }
    let (count, dlen) = intro_sizes(&intro);
    let size = count * ENTRY_SIZE + dlen;
    if size > MAX_HEADER_SIZE {
        bail_kind!(
            FailureKind::InvalidPackage,
            "RPM {what} too large ({size} bytes, the limit is {} MiB)",
            MAX_HEADER_SIZE >> 20
        );
    }
    let start = prefix.len();
    prefix.extend_from_slice(&intro);
    prefix.resize(start + INTRO_SIZE + size as usize, 0);
    read_at(
        file,
        &mut prefix[start + INTRO_SIZE..],
        offset + INTRO_SIZE as u64,
        file_len,
        what,
    )?;
    check_header_blob(&prefix[start..], what)?;
    Ok(INTRO_SIZE as u64 + size)
}

/// Read and check the lead and both headers. Reads exactly the bytes before
/// the payload: 96 + (signature header, at most 64 MiB + 16 + 7 padding) +
/// (main header, at most 64 MiB + 16).
pub fn read_layout(file: &File, file_len: u64) -> Result<Layout> {
    if file_len == 0 {
        bail_kind!(FailureKind::InvalidPackage, "the package file is empty");
    }
    let mut lead = [0u8; LEAD_SIZE];
    let head = file_len.min(LEAD_SIZE as u64) as usize;
    read_at(file, &mut lead[..head], 0, file_len, "lead")?;
    if head < 4 || lead[..4] != LEAD_MAGIC {
        bail_kind!(
            FailureKind::InvalidPackage,
            "not an RPM package (bad lead magic)"
        );
    }
    read_at(file, &mut lead, 0, file_len, "lead")?;
    if !(3..=4).contains(&lead[4]) {
        bail_kind!(
            FailureKind::InvalidPackage,
            "unsupported RPM: lead format version {}",
            lead[4]
        );
    }
    let sigtype = u16::from_be_bytes([lead[78], lead[79]]);
    if sigtype != SIGTYPE_HEADERSIG {
        bail_kind!(
            FailureKind::InvalidPackage,
            "unsupported RPM: lead signature type {sigtype}"
        );
    }
    let source_lead = u16::from_be_bytes([lead[6], lead[7]]) == 1;
    let mut prefix = Vec::with_capacity(8192);
    prefix.extend_from_slice(&lead);

    let sig_len = read_header(
        file,
        LEAD_SIZE as u64,
        file_len,
        "signature header",
        &mut prefix,
    )?;
    let pad = (8 - sig_len % 8) % 8;
    let pad_start = prefix.len();
    prefix.resize(pad_start + pad as usize, 0);
    read_at(
        file,
        &mut prefix[pad_start..],
        pad_start as u64,
        file_len,
        "signature header",
    )?;
    let header_start = prefix.len();
    read_header(file, header_start as u64, file_len, "header", &mut prefix)?;
    let payload_start = prefix.len();
    Ok(Layout {
        prefix,
        header_start,
        payload_start,
        source_lead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    fn header(entries: &[(u32, u32, i32, u32)], data: &[u8]) -> Vec<u8> {
        let mut h = HEADER_MAGIC.to_vec();
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        h.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for &(tag, ty, off, n) in entries {
            for v in [tag, ty, off as u32, n] {
                h.extend_from_slice(&v.to_be_bytes());
            }
        }
        h.extend_from_slice(data);
        h
    }

    fn refused(blob: &[u8]) -> String {
        let e = check_header_blob(blob, "header").unwrap_err();
        assert_eq!(kind_of(&e), FailureKind::InvalidPackage);
        let msg = format!("{e:#}");
        assert!(!msg.contains('\n'));
        msg
    }

    #[test]
    fn sane_index_passes() {
        let data = b"name\0\0\0\0\0\0\0\x2a";
        check_header_blob(
            &header(&[(1000, 6, 0, 1), (1009, 4, 8, 1), (1010, 7, 0, 4)], data),
            "header",
        )
        .unwrap();
        check_header_blob(&header(&[], b""), "header").unwrap();
    }

    #[test]
    fn out_of_range_entries_are_refused() {
        let data = [0u8; 16];
        for (entry, needle) in [
            ((1000, 6, -1, 1), "outside the data store"),
            ((1000, 6, 17, 1), "outside the data store"),
            ((1000, 4, 8, 3), "runs past the end"),
            ((1000, 5, 0, u32::MAX), "runs past the end"),
            ((1000, 8, 0, 0x7fff_ffff), "runs past the end"),
            ((1000, 7, 10, 7), "runs past the end"),
            ((1000, 6, 0, 2), "count other than 1"),
            ((1000, 12, 0, 1), "unknown data type 12"),
        ] {
            let msg = refused(&header(&[entry], &data));
            assert!(msg.contains(needle), "{entry:?}: {msg}");
        }
    }

    #[test]
    fn bad_magic_and_sizes_are_refused() {
        assert!(refused(b"").contains("bad header magic"));
        assert!(refused(b"\x8e\xad\xe8\x02\0\0\0\0\0\0\0\0\0\0\0\0").contains("magic"));
        let mut h = header(&[(1000, 6, 0, 1)], b"x\0");
        h.pop();
        assert!(refused(&h).contains("does not match its index"));
    }

    #[test]
    fn layout_of_garbage_files() {
        use std::io::Write;
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"\xed", "bad lead magic"),
            (b"hello, this is not an rpm at all", "bad lead magic"),
            (b"\xed\xab\xee\xdb\x03\x00", "ends inside the lead"),
        ];
        for (bytes, needle) in cases {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(bytes).unwrap();
            let e = read_layout(&f, bytes.len() as u64).unwrap_err();
            assert_eq!(kind_of(&e), FailureKind::InvalidPackage);
            assert!(format!("{e:#}").contains(needle), "{e:#}");
        }
        // A lead followed by a header that claims to be huge.
        let mut bytes = vec![0u8; LEAD_SIZE];
        bytes[..4].copy_from_slice(&LEAD_MAGIC);
        bytes[4] = 3;
        bytes[79] = 5;
        bytes.extend_from_slice(&HEADER_MAGIC);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes).unwrap();
        let e = read_layout(&f, bytes.len() as u64).unwrap_err();
        assert!(
            format!("{e:#}").contains("signature header too large"),
            "{e:#}"
        );
    }
}
