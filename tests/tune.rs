//! `strata tune`'s checks and settings on fixture host trees (no root needed).

use std::path::Path;

use strata::tune::{apply, run_checks, Applied, HostFacts, Status};

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

fn facts() -> HostFacts {
    HostFacts {
        filesystem: Some("ext4".into()),
        o_direct: Some(Ok(())),
        io_uring: Some(Ok(())),
        block_device: Some("259:0".into()),
        cores: 2,
        memlock_needed: 128 << 20,
        privileged: false,
    }
}

fn status_of(checks: &[strata::tune::Check], name: &str) -> Status {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .status
}

fn untuned_host(root: &Path) {
    write(root, "/proc/sys/kernel/io_uring_disabled", "2\n");
    write(root, "/proc/sys/kernel/osrelease", "5.4.0-150-generic\n");
    write(root, "/proc/self/limits", "Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         65536                65536                bytes\n");
    write(
        root,
        "/sys/dev/block/259:0/queue/scheduler",
        "[mq-deadline] none\n",
    );
    write(root, "/sys/dev/block/259:0/queue/nr_requests", "64\n");
    write(root, "/sys/dev/block/259:0/queue/read_ahead_kb", "4096\n");
    write(
        root,
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "powersave\n",
    );
    write(
        root,
        "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
        "performance\n",
    );
    write(
        root,
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    write(root, "/proc/sys/vm/swappiness", "60\n");
    write(root, "/proc/sys/fs/aio-max-nr", "65536\n");
    write(root, "/proc/sys/net/core/somaxconn", "128\n");
    write(root, "/proc/sys/net/core/rmem_max", "212992\n");
    write(root, "/proc/sys/net/core/wmem_max", "212992\n");
    write(root, "/proc/interrupts", "           CPU0       CPU1\n 40:        100        200   PCI-MSI 1-edge      nvme0q0\n 41:       9000          0   PCI-MSI 2-edge      nvme0q1\n 50:          5          5   PCI-MSI 3-edge      virtio0-config\nNMI:          0          0   Non-maskable interrupts\n");
    write(root, "/proc/irq/40/smp_affinity_list", "0-1\n");
    write(root, "/proc/irq/41/smp_affinity_list", "0\n");
    write(
        root,
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        "kvm-clock\n",
    );
}

#[test]
fn an_untuned_host_gets_warnings_fixes_and_settings() {
    let root = tempfile::tempdir().expect("tempdir");
    untuned_host(root.path());
    let mut f = facts();
    f.filesystem = Some("tmpfs".into());
    f.o_direct = Some(Err("EINVAL".into()));
    let (checks, settings) = run_checks(root.path(), &f);
    for (name, want) in [
        ("io_uring", Status::Fail),
        ("kernel", Status::Fail),
        ("memlock", Status::Warn),
        ("filesystem", Status::Warn),
        ("o_direct", Status::Fail),
        ("scheduler", Status::Warn),
        ("nr_requests", Status::Warn),
        ("read_ahead", Status::Warn),
        ("cpu_governor", Status::Warn),
        ("transparent_hugepages", Status::Warn),
        ("swappiness", Status::Warn),
        ("aio_max_nr", Status::Warn),
        ("somaxconn", Status::Warn),
        ("rmem_max", Status::Warn),
        ("wmem_max", Status::Warn),
        ("irq_affinity", Status::Warn),
        ("clocksource", Status::Warn),
    ] {
        assert_eq!(status_of(&checks, name), want, "{name}: {checks:#?}");
    }
    assert!(
        checks
            .iter()
            .filter(|c| c.status != Status::Pass)
            .all(|c| c.fix.is_some() || c.status == Status::Info),
        "every problem names its fix"
    );
    let irq = checks
        .iter()
        .find(|c| c.name == "irq_affinity")
        .expect("irq");
    assert!(
        irq.found.contains("nvme0q1:0") && !irq.found.contains("virtio0-config"),
        "{}",
        irq.found
    );

    // Apply on the fixture tree: dry run changes nothing, a real run changes each file once.
    let dry = apply(root.path(), &settings, true);
    assert!(
        dry.iter()
            .all(|(_, a)| matches!(a, Applied::WouldChange { .. })),
        "{dry:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness"))
            .expect("read")
            .trim(),
        "60"
    );
    let done = apply(root.path(), &settings, false);
    assert!(
        done.iter()
            .all(|(_, a)| matches!(a, Applied::Changed { .. })),
        "{done:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).expect("read"),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("sys/dev/block/259:0/queue/scheduler"))
            .expect("read"),
        "none"
    );
    let again = apply(root.path(), &settings, false);
    assert!(
        again.iter().all(|(_, a)| *a == Applied::Unchanged),
        "{again:?}"
    );
    let (after, _) = run_checks(root.path(), &f);
    for name in [
        "swappiness",
        "aio_max_nr",
        "somaxconn",
        "scheduler",
        "transparent_hugepages",
        "cpu_governor",
        "io_uring",
    ] {
        assert_eq!(status_of(&after, name), Status::Pass, "{name} after apply");
    }
}

#[test]
fn a_tuned_host_passes() {
    let root = tempfile::tempdir().expect("tempdir");
    untuned_host(root.path());
    for (p, v) in [
        ("/proc/sys/kernel/io_uring_disabled", "0"),
        ("/proc/sys/kernel/osrelease", "6.8.0"),
        ("/sys/dev/block/259:0/queue/scheduler", "[none] mq-deadline"),
        ("/sys/dev/block/259:0/queue/nr_requests", "1023"),
        ("/sys/dev/block/259:0/queue/read_ahead_kb", "0"),
        (
            "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "performance",
        ),
        (
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never",
        ),
        ("/proc/sys/vm/swappiness", "1"),
        ("/proc/sys/fs/aio-max-nr", "1048576"),
        ("/proc/sys/net/core/somaxconn", "4096"),
        ("/proc/sys/net/core/rmem_max", "16777216"),
        ("/proc/sys/net/core/wmem_max", "16777216"),
        ("/proc/irq/41/smp_affinity_list", "3"),
        (
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            "tsc",
        ),
    ] {
        write(root.path(), p, v);
    }
    write(
        root.path(),
        "/proc/self/limits",
        "Max locked memory         unlimited            unlimited            bytes\n",
    );
    let (checks, settings) = run_checks(root.path(), &facts());
    assert!(
        checks.iter().all(|c| c.status == Status::Pass),
        "{checks:#?}"
    );
    assert!(settings.is_empty(), "{settings:?}");
}
