//! The disk against test buffers: whole aligned blocks in and out, every refusal named and counted with nothing moved, written blocks remembered as runs, and a property test over any requests.

use super::*;
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;

const BS: u32 = 512;

/// A disk of `blocks` blocks whose bytes are their offset's low byte, and
/// its map.
fn image(blocks: u64) -> Vec<u8> {
    (0..blocks * u64::from(BS)).map(|i| i as u8).collect()
}

fn disk<'d>(store: RawRam, map: &'d mut [u64]) -> Disk<'d, RawRam> {
    let cap = store.size();
    Disk::new(store, cap, BS, map).unwrap()
}

#[test]
fn whole_blocks_go_both_ways_and_are_remembered() {
    let mut img = image(8);
    let mut guest = vec![0u8; 8192];
    let mut map = [0u64; 1];
    let mut d = disk(over_vec(&mut img), &mut map);
    let mut g = over_vec(&mut guest);
    d.read(1024, 1024, &mut g, 0x100).unwrap();
    let mut got = vec![0u8; 1024];
    g.read(Gpa(0x100), &mut got).unwrap();
    assert_eq!(got, (1024u64..2048).map(|i| i as u8).collect::<Vec<_>>());
    g.write(Gpa(0x1000), &[0xab; 512]).unwrap();
    g.write(Gpa(0x1200), &[0xcd; 512]).unwrap();
    d.write(2560, 1024, &g, 0x1000).unwrap();
    d.write(0, 512, &g, 0x1000).unwrap();
    assert_eq!(d.dirty(), 3);
    assert_eq!(
        d.written_runs().collect::<Vec<_>>(),
        vec![(0, 512), (2560, 1024)]
    );
    let mut out = Vec::new();
    d.read_out(2560, 1024, 100, |off, bytes| {
        assert_eq!(off, 2560 + out.len() as u64);
        out.extend_from_slice(bytes);
    });
    assert_eq!(out[..512], [0xab; 512]);
    assert_eq!(out[512..], [0xcd; 512]);
    assert_eq!(
        d.flow,
        BlockFlow {
            reads: 1,
            writes: 2,
            bytes_read: 1024,
            bytes_written: 1536,
            errors: 0,
        }
    );
}

#[test]
fn bad_requests_are_refused_by_name_counted_and_move_nothing() {
    let mut img = image(4);
    let before = img.clone();
    let mut guest = vec![0x5au8; 4096];
    let mut map = [0u64; 1];
    let mut d = disk(over_vec(&mut img), &mut map);
    let mut g = over_vec(&mut guest);
    let cases = [
        (
            0,
            0,
            "0 bytes at offset 0 are not whole blocks of 512 bytes at a block boundary",
        ),
        (
            1,
            512,
            "512 bytes at offset 1 are not whole blocks of 512 bytes at a block boundary",
        ),
        (
            0,
            513,
            "513 bytes at offset 0 are not whole blocks of 512 bytes at a block boundary",
        ),
        (
            2048,
            512,
            "512 bytes at offset 2048 go past the end of the image (2048 bytes)",
        ),
        (
            1536,
            1024,
            "1024 bytes at offset 1536 go past the end of the image (2048 bytes)",
        ),
        (
            u64::MAX - 511,
            1024,
            "1024 bytes at offset 18446744073709551104 go past the end of the image (2048 bytes)",
        ),
    ];
    for (offset, len, text) in cases {
        let e = d.write(offset, len, &g, 0).unwrap_err();
        assert_eq!(e.to_string(), text);
        assert_eq!(d.read(offset, len, &mut g, 0).unwrap_err(), e);
    }
    // A buffer outside the guest: the guest's fault.
    let e = d.write(0, 512, &g, 4000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the buffer of 512 bytes at 0xfa0 is not in the guest's memory"
    );
    assert_eq!(
        d.read(0, 512, &mut g, u64::MAX - 10).unwrap_err(),
        BlockError::Buffer {
            gpa: u64::MAX - 10,
            len: 512
        }
    );
    assert_eq!(d.flow.errors, 12, "requests refused, buffers not");
    assert_eq!((d.flow.reads, d.flow.writes, d.dirty()), (0, 0, 0));
    assert_eq!(img, before);
    assert!(guest.iter().all(|&b| b == 0x5a));
}

#[test]
fn one_request_moves_at_most_a_mebibyte() {
    let mut img = image(4096);
    let mut guest = vec![0u8; 2 << 20];
    let mut map = [0u64; 64];
    let mut d = disk(over_vec(&mut img), &mut map);
    let mut g = over_vec(&mut guest);
    assert!(d.read(0, MAX_REQUEST, &mut g, 0).is_ok());
    let e = d.read(0, MAX_REQUEST + 512, &mut g, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "1049088 bytes in one request, more than the 1048576 allowed"
    );
    assert_eq!(d.flow.errors, 1);
}

#[test]
fn a_disk_must_be_the_size_the_manifest_says() {
    let mut img = image(4);
    let mut map = [0u64; 1];
    let e = Disk::new(over_vec(&mut img), 4096, BS, &mut map)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "its image is 2048 bytes, but the manifest says 4096"
    );
    let mut big = image(65);
    let e = Disk::new(over_vec(&mut big), 65 * 512, BS, &mut map)
        .err()
        .unwrap();
    assert_eq!(
        e,
        DiskError::Map {
            words: 1,
            needed: 2
        }
    );
    assert_eq!(map_words(65 * 512, BS), 2);
}

proptest! {
    /// Any requests: the image changes exactly where accepted writes put
    /// bytes, reads give back the image's bytes, the counters add up, and
    /// the written runs cover exactly the blocks written.
    #[test]
    fn the_disk_is_a_model_byte_array(
        reqs in proptest::collection::vec((any::<bool>(), 0u64..5000, 0u64..3000, 0u64..9000), 1..40),
    ) {
        let blocks = 8u64;
        let mut img = image(blocks);
        let mut model = img.clone();
        let mut written = vec![false; blocks as usize];
        let mut guest: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        let mut gmodel = guest.clone();
        let mut map = [0u64; 1];
        let mut d = disk(over_vec(&mut img), &mut map);
        let mut g = over_vec(&mut guest);
        let mut refused = 0;
        for (is_write, offset, len, gpa) in reqs {
            let ok_req = len > 0 && offset % 512 == 0 && len % 512 == 0 && offset + len <= blocks * 512;
            let ok_buf = gpa + len <= 8192;
            let r = if is_write { d.write(offset, len, &g, gpa) } else { d.read(offset, len, &mut g, gpa) };
            prop_assert_eq!(r.is_ok(), ok_req && ok_buf);
            refused += u64::from(!ok_req);
            if r.is_ok() {
                let (o, l, a) = (offset as usize, len as usize, gpa as usize);
                if is_write {
                    model[o..o + l].copy_from_slice(&gmodel[a..a + l]);
                    written[o / 512..(o + l) / 512].fill(true);
                } else {
                    gmodel[a..a + l].copy_from_slice(&model[o..o + l]);
                }
            }
        }
        prop_assert_eq!(d.flow.errors, refused);
        let runs: Vec<(u64, u64)> = d.written_runs().collect();
        let mut covered = vec![false; blocks as usize];
        for (o, l) in runs {
            for b in o / 512..(o + l) / 512 { covered[b as usize] = true; }
        }
        prop_assert_eq!(covered, written);
            prop_assert_eq!(img, model);
        prop_assert_eq!(guest, gmodel);
    }
}
