//! After a run, each persistent block device's written blocks go back to its host file: only when the run completed, only when every written byte arrived, and only inside the image, so a file is changed whole or not at all.

use crate::error::{Error, Result};
use crate::outcome::{BlockOutcome, RunOutcome};
use crate::toml_manifest::BlockConfig;
use std::os::unix::fs::FileExt;

/// Writes back every persistent block device of `blocks` from the
/// records in `outcome`; returns the bytes written per block (manifest
/// order; 0 for one that does not persist or wrote nothing).
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
    // Every block is checked before any file is touched.
    let mut plans = Vec::new();
    for (i, b) in blocks.iter().enumerate().filter(|(_, b)| b.persist) {
        let o = outcome
            .blocks
            .get(i)
            .filter(|o| o.name == b.name)
            .ok_or_else(|| {
                Error::new(format!(
                    "block `{}`: no `block` record arrived, so its file is unchanged",
                    b.name
                ))
            })?;
        check(b, o)?;
        plans.push((i, b, o));
    }
    for (i, b, o) in plans {
        let Some(path) = &b.file else {
            continue;
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| {
                Error::new(format!(
                    "block `{}`: cannot open {}: {e}",
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
                "block `{}`: {} is {size} bytes now, {} when the run started; not written back",
                b.name,
                path.display(),
                b.capacity
            )));
        }
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

/// Whether `o`'s written bytes are exactly its written blocks, inside the
/// image.
fn check(b: &BlockConfig, o: &BlockOutcome) -> Result<()> {
    let arrived: u64 = o.data.iter().map(|(_, d)| d.len() as u64).sum();
    let expected = o.dirty * u64::from(b.block_size);
    if arrived != expected {
        return Err(Error::new(format!(
            "block `{}`: {arrived} of the {expected} written bytes arrived, so its file is unchanged",
            b.name
        )));
    }
    if let Some((offset, d)) = o.data.iter().find(|(offset, d)| {
        offset
            .checked_add(d.len() as u64)
            .is_none_or(|end| end > b.capacity)
    }) {
        return Err(Error::new(format!(
            "block `{}`: {} bytes at {offset} lie outside its {} bytes, so its file is unchanged",
            b.name,
            d.len(),
            b.capacity
        )));
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
                "512 of the 1024 written bytes arrived",
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
        ];
        for (o, text) in cases {
            let e = write_back(&c, &o).unwrap_err();
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
}
