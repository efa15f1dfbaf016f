//! After a run, each persistent block device's written blocks go back to its host file: only when the run completed, only when every written byte arrived, and only inside the image, so a file is changed whole or not at all.

use crate::error::{Error, Result};
use crate::outcome::{BlockOutcome, RunOutcome};
use crate::toml_manifest::BlockConfig;
use std::os::unix::fs::FileExt;

/// Writes back every persistent block device of `blocks` from the
/// records in `outcome`; returns the bytes written per block (manifest
/// order; 0 for one that does not persist or wrote nothing). Every disk
/// and every file is checked before any file is written.
pub fn write_back(blocks: &[BlockConfig], outcome: &RunOutcome) -> Result<Vec<u64>> {
    let mut written = vec![0; blocks.len()];
    if !outcome.done {
        if blocks.iter().any(|b| b.persist) {
            return Err(Error::new(
                "the run did not complete, so no block device was written back (their files are unchanged)",
            ));
        }
        return Ok(written);
    }
    let mut plans = Vec::new();
    for (i, b) in blocks.iter().enumerate().filter(|(_, b)| b.persist) {
        let Some(path) = &b.file else {
            continue;
        };
        let o = outcome
            .blocks
            .get(i)
            .filter(|o| o.name == b.name)
            .ok_or_else(|| {
                Error::new(format!(
                    "block `{}`: no `block` record arrived, so no file was written back",
                    b.name
                ))
            })?;
        check(b, o)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| {
                Error::new(format!(
                    "block `{}`: cannot open {}: {e}; no file was written back",
                    b.name,
                    path.display()
                ))
            })?;
        let size = file
            .metadata()
            .map_err(|e| Error::new(format!("block `{}`: {}: {e}", b.name, path.display())))?
            .len();
        if size != b.capacity {
            return Err(Error::new(format!(
                "block `{}`: {} is {size} bytes now, {} when the run started; no file was written back",
                b.name,
                path.display(),
                b.capacity
            )));
        }
        plans.push((i, b, path, o, file));
    }
    for (i, b, path, o, file) in plans {
        for (offset, bytes) in &o.data {
            file.write_all_at(bytes, *offset).map_err(|e| {
                Error::new(format!(
                    "block `{}`: cannot write {} at {offset}: {e}",
                    b.name,
                    path.display()
                ))
            })?;
            written[i] += bytes.len() as u64;
        }
        file.sync_all()
            .map_err(|e| Error::new(format!("block `{}`: {}: {e}", b.name, path.display())))?;
    }
    Ok(written)
}

/// Whether `o` is the disk `b` describes and its written bytes cover
/// exactly its written blocks, each byte once, inside the image.
fn check(b: &BlockConfig, o: &BlockOutcome) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::new(format!(
            "block `{}`: {why}, so no file was written back",
            b.name
        )))
    };
    if (o.capacity, o.block_size) != (b.capacity, b.block_size) {
        return refuse(format!(
            "its record says {} bytes in blocks of {}, the manifest {} in blocks of {}",
            o.capacity, o.block_size, b.capacity, b.block_size
        ));
    }
    let bs = u64::from(b.block_size);
    let mut covered = vec![0u64; (b.capacity / bs) as usize];
    let mut pieces: Vec<(u64, u64)> = o.data.iter().map(|(at, d)| (*at, d.len() as u64)).collect();
    pieces.sort_unstable();
    if let Some(w) = pieces
        .windows(2)
        .find(|w| w[0].0.saturating_add(w[0].1) > w[1].0)
    {
        return refuse(format!("the bytes at {} and at {} overlap", w[0].0, w[1].0));
    }
    for (offset, d) in &o.data {
        let end = offset
            .checked_add(d.len() as u64)
            .filter(|&e| e <= b.capacity);
        let Some(end) = end else {
            return refuse(format!(
                "{} bytes at {offset} lie outside its {} bytes",
                d.len(),
                b.capacity
            ));
        };
        for block in offset / bs..end.div_ceil(bs) {
            let lo = (block * bs).max(*offset);
            let hi = ((block + 1) * bs).min(end);
            covered[block as usize] += hi - lo;
        }
    }
    let whole = covered.iter().filter(|&&c| c == bs).count() as u64;
    if whole != o.dirty || covered.iter().any(|&c| c != 0 && c != bs) {
        return refuse(format!(
            "the bytes that arrived cover {whole} whole blocks, not the {} written, or cover some twice or in part",
            o.dirty
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn config(file: PathBuf, persist: bool) -> BlockConfig {
        BlockConfig {
            name: "disk0".into(),
            file: Some(file),
            block_size: 512,
            capacity: 2048,
            persist,
            vm: 0,
            device: "storage".into(),
        }
    }

    fn outcome(dirty: u64, data: Vec<(u64, Vec<u8>)>) -> RunOutcome {
        let mut o = RunOutcome::new(0);
        o.done = true;
        o.blocks = vec![BlockOutcome {
            name: "disk0".into(),
            capacity: 2048,
            block_size: 512,
            dirty,
            data,
            ..BlockOutcome::default()
        }];
        o
    }

    fn unfinished(mut o: RunOutcome) -> RunOutcome {
        o.done = false;
        o
    }

    fn no_records() -> RunOutcome {
        let mut o = RunOutcome::new(0);
        o.done = true;
        o
    }

    fn temp_file(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("corral-wb-{tag}-{}", std::process::id()));
        std::fs::write(&p, vec![7u8; 2048]).unwrap();
        p
    }

    #[test]
    fn written_blocks_go_back_and_nothing_else_changes() {
        let p = temp_file("ok");
        let o = outcome(1, vec![(512, vec![1; 256]), (768, vec![2; 256])]);
        assert_eq!(
            write_back(&[config(p.clone(), true)], &o).unwrap(),
            vec![512]
        );
        let got = std::fs::read(&p).unwrap();
        assert!(got[..512].iter().all(|&b| b == 7));
        assert!(got[512..768].iter().all(|&b| b == 1));
        assert!(got[768..1024].iter().all(|&b| b == 2));
        assert!(got[1024..].iter().all(|&b| b == 7));
        // Not persistent: untouched.
        let q = temp_file("keep");
        assert_eq!(
            write_back(&[config(q.clone(), false)], &o).unwrap(),
            vec![0]
        );
        assert!(std::fs::read(&q).unwrap().iter().all(|&b| b == 7));
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(q);
    }

    #[test]
    fn incomplete_or_impossible_data_leaves_the_file_alone() {
        let p = temp_file("bad");
        let c = [config(p.clone(), true)];
        let cases = [
            (
                outcome(2, vec![(0, vec![1; 512])]),
                "cover 1 whole blocks, not the 2 written",
            ),
            (
                outcome(1, vec![(1792, vec![1; 512])]),
                "512 bytes at 1792 lie outside its 2048 bytes",
            ),
            (
                unfinished(outcome(1, vec![(0, vec![1; 512])])),
                "the run did not complete",
            ),
            (no_records(), "no `block` record arrived"),
            // The same half block twice: the total is right, the cover not.
            (
                outcome(1, vec![(0, vec![1; 256]), (0, vec![1; 256])]),
                "the bytes at 0 and at 0 overlap",
            ),
            // Half of one block and half of another.
            (
                outcome(1, vec![(0, vec![1; 256]), (512, vec![1; 256])]),
                "or cover some twice or in part",
            ),
            (
                {
                    let mut o = outcome(1, vec![(0, vec![1; 512])]);
                    o.blocks[0].block_size = 4096;
                    o
                },
                "its record says 2048 bytes in blocks of 4096, the manifest 2048 in blocks of 512",
            ),
        ];
        for (o, text) in cases {
            let e = write_back(&c, &o).expect_err(text);
            assert!(e.message().contains(text), "{}", e.message());
            assert!(std::fs::read(&p).unwrap().iter().all(|&b| b == 7));
        }
        // The file changed size during the run.
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let e = write_back(&c, &outcome(1, vec![(0, vec![1; 512])])).unwrap_err();
        assert!(
            e.message()
                .contains("is 4096 bytes now, 2048 when the run started"),
            "{}",
            e.message()
        );
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn one_bad_disk_stops_every_write_back() {
        // Two persistent disks; the second's file changed size: the first
        // is not written either.
        let (p, q) = (temp_file("first"), temp_file("second"));
        std::fs::write(&q, vec![7u8; 1024]).unwrap();
        let mut second = config(q.clone(), true);
        second.name = "disk1".into();
        let mut o = outcome(1, vec![(0, vec![1; 512])]);
        let mut b1 = o.blocks[0].clone();
        b1.name = "disk1".into();
        o.blocks.push(b1);
        let e = write_back(&[config(p.clone(), true), second], &o).unwrap_err();
        assert!(e.message().contains("disk1"), "{}", e.message());
        assert!(std::fs::read(&p).unwrap().iter().all(|&b| b == 7));
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(q);
    }
}
