//! A full disk: appends fail with a typed I/O error (Kafka's KAFKA_STORAGE_ERROR), nothing
//! panics, and every acknowledged batch is still there when the log is reopened.
//! Needs root to loop-mount a small ext4 image (CI runs as root); elsewhere it says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use strata::storage::{LogConfig, StorageError};

struct LoopMount(PathBuf);

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_small_ext4(dir: &Path, mib: u64) -> LoopMount {
    let image = dir.join("disk.img");
    let f = std::fs::File::create(&image).expect("image");
    f.set_len(mib << 20).expect("size");
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .status()
        .expect("mkfs.ext4");
    assert!(ok.success(), "mkfs.ext4 failed");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let ok = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(ok.success(), "mount -o loop failed");
    LoopMount(mnt)
}

#[test]
fn full_disk_is_a_typed_error_and_acknowledged_data_survives() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = mount_small_ext4(dir.path(), 16);
    let data = mount.0.join("p-0");
    let config = LogConfig {
        segment_bytes: 64 << 20, // larger than the disk
        ..Default::default()
    };
    let (acked, err) = run({
        let (data, config) = (data.clone(), config.clone());
        async move {
            let log = open(&data, config).await;
            let mut acked = -1i64;
            for i in 0..10_000u64 {
                let r = async {
                    let info = log
                        .append(&numbered_batch(&"z".repeat(6000), i * 10, 10, 1))
                        .await?;
                    log.flush(info.last_offset + 1).await?;
                    Ok::<_, StorageError>(info.last_offset)
                }
                .await;
                match r {
                    Ok(last) => acked = last,
                    Err(e) => {
                        // Once failed, the log refuses writes rather than risk a hole.
                        assert!(log.append(&numbered_batch("after", 0, 1, 1)).await.is_err());
                        return (acked, e);
                    }
                }
            }
            panic!("a 16 MiB disk never filled up");
        }
    });
    assert!(
        matches!(&err, StorageError::Io(e) if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(
        acked > 100,
        "some batches were acknowledged before the disk filled ({acked})"
    );
    let end = run(async move {
        let log = open(&data, config).await;
        let vals = values(&read_all(&log, 0).await);
        assert!(
            vals.len() as i64 > acked,
            "every acknowledged record is readable"
        );
        for (i, (off, _)) in vals.iter().enumerate() {
            assert_eq!(*off, i as i64);
        }
        log.log_end()
    });
    assert!(end > acked);
}
