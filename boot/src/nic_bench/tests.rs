//! Tests of `corral nic-bench`'s manifest rewriting, datagrams, rows, repeatability check and table.

use super::*;
use crate::outcome::RunOutcome;
use crate::toml_manifest::parse;
use vmm_abi::manifest::NicMode;
use vmm_abi::report::parse_line;

fn images() -> Vec<String> {
    vec!["echo".to_string()]
}

const TEMPLATE: &str = "[run]\ncpus = 2\n\
    [[vm]]\nname = \"echo\"\nimage = \"echo\"\nnet = 1\ncores = [1]\nargs = \"port=7\"\n\
    [[nic]]\nname = \"uplink\"\nforward = [\"udp:15555:7\"]\n\
    [[link]]\na = \"echo.0\"\nb = \"nic:uplink\"\n";

#[test]
fn each_case_sets_the_mode_the_port_and_the_bound() {
    let text = with_case(TEMPLATE, "owned", 40001, Some(77)).unwrap();
    let m = parse(&text, "n.toml", &images()).unwrap();
    assert_eq!(m.nics.len(), 1);
    assert_eq!(m.nics[0].mode, NicMode::Owned);
    assert_eq!(m.run.timeout_secs, 77);
    let forwards = format!("{:?}", m.nics[0].backend);
    assert!(forwards.contains("40001"), "{forwards}");
    let text = with_case(TEMPLATE, "shared", 40002, None).unwrap();
    let m = parse(&text, "n.toml", &images()).unwrap();
    assert_eq!(m.nics[0].mode, NicMode::Shared);
    assert_eq!(m.run.timeout_secs, 120);
}

#[test]
fn templates_without_one_nic_and_its_forward_are_refused() {
    let e = with_case("[[vm]]\nname = \"a\"\nimage = \"echo\"\n", "owned", 1, None);
    assert!(e.unwrap_err().to_string().contains("exactly one [[nic]]"));
    let e = with_case("[[nic]]\nname = \"u\"\n", "owned", 1, None);
    assert!(e.unwrap_err().to_string().contains("forward"));
    assert!(with_case("[[nic]\n", "owned", 1, None).is_err());
}

#[test]
fn datagrams_fill_their_frame_size_and_differ() {
    assert_eq!(payload(3, 64).len() as u32 + HEADERS, 64);
    assert_eq!(payload(3, 1500).len() as u32 + HEADERS, 1500);
    assert!(payload(7, 64).starts_with(b"00000007 "));
    assert_ne!(payload(1, 64), payload(2, 64));
    // Too small for its number: the number still goes.
    assert_eq!(payload(12, 10), b"00000012 ".to_vec());
}

fn report(records: &[&str]) -> Report {
    let text = with_case(TEMPLATE, "shared", 15555, None).unwrap();
    let m = parse(&text, "n.toml", &images()).unwrap();
    let mut outcome = RunOutcome::for_manifest(&m);
    for line in records {
        outcome.apply(&parse_line(line).unwrap().unwrap());
    }
    Report::new(&m, "corei7_icelake_u", 2, &outcome)
}

const WINDOW: &str =
    "@corral nic-window nic=0 frames=256 exits=0 rx_busy=51200 tx_frames=256 tx_busy=40960";

#[test]
fn rows_come_from_the_nic_window() {
    let r = Row::from_report("burst", "shared", 64, 1, &report(&[WINDOW])).unwrap();
    assert_eq!(
        r,
        Row {
            load: "burst".into(),
            mode: "shared".into(),
            frame_size: 64,
            run: 1,
            rx_frames: 256,
            rx_busy: 51_200,
            tx_frames: 256,
            tx_busy: 40_960,
            exits: 0,
        }
    );
    let e = Row::from_report("lockstep", "shared", 64, 1, &report(&[])).unwrap_err();
    assert!(e.to_string().contains("no `nic-window` record"), "{e}");
    let empty = "@corral nic-window nic=0 frames=256 exits=0 rx_busy=1 tx_frames=0 tx_busy=0";
    let e = Row::from_report("lockstep", "shared", 64, 1, &report(&[empty])).unwrap_err();
    assert!(e.to_string().contains("no frames"), "{e}");
}

fn row(mode: &str, size: u32, run: u32, rx_busy: u64, exits: u64) -> Row {
    Row {
        load: "lockstep".into(),
        mode: mode.into(),
        frame_size: size,
        run,
        rx_frames: 256,
        rx_busy,
        tx_frames: 256,
        tx_busy: 256 * 100,
        exits,
    }
}

#[test]
fn runs_of_a_case_must_agree() {
    let same = [
        row("owned", 64, 1, 25_600, 0),
        row("owned", 64, 2, 25_600, 0),
    ];
    assert!(unrepeatable(&same).is_empty());
    // Whole instructions per frame are compared: 100.00 and 100.04 print
    // the same, 100.00 and 101.00 do not; exits per frame in hundredths.
    let close = [
        row("owned", 64, 1, 25_600, 0),
        row("owned", 64, 2, 25_610, 0),
    ];
    assert!(unrepeatable(&close).is_empty());
    let differ = [
        row("owned", 64, 1, 25_600, 0),
        row("owned", 64, 2, 25_856, 0),
        row("shared", 64, 1, 25_600, 0),
        row("shared", 64, 2, 25_600, 0),
        row("shared", 1500, 1, 9, 0),
        row("shared", 1500, 2, 9, 3),
    ];
    assert_eq!(
        unrepeatable(&differ),
        ["lockstep owned 64", "lockstep shared 1500"]
    );
    // The same case under the other load is another case.
    let mut burst = row("owned", 64, 2, 25_856, 0);
    burst.load = "burst".into();
    assert!(unrepeatable(&[row("owned", 64, 1, 25_600, 0), burst]).is_empty());
    let out = lines(&differ, "x");
    assert!(
        out.iter().any(
            |l| l == "repeatable: NO (runs differ for lockstep owned 64, lockstep shared 1500)"
        ),
        "{out:#?}"
    );
}

#[test]
fn the_table_and_verdicts() {
    let rows = [
        row("shared", 64, 1, 256 * 300, 0),
        row("shared", 64, 2, 256 * 300, 0),
        row("owned", 64, 1, 256 * 140, 0),
        row("owned", 64, 2, 256 * 140, 0),
    ];
    let out = lines(&rows, "nic-bench.toml on corei7_icelake_u x2");
    assert!(out[0].starts_with("nic bench: nic-bench.toml on corei7_icelake_u x2; "));
    assert_eq!(
        out[1],
        "load      mode    frame  window  exits/frame  rx instr/frame  tx instr/frame  run"
    );
    assert_eq!(
        out[2],
        "lockstep  shared     64     256         0.00             300             100    1"
    );
    assert_eq!(
        &out[6..],
        [
            "repeatable: yes (the 2 runs of each case printed the same numbers)",
            "target 0.00 VM exits per frame: met (most: 0.00, 0 exits in 256 frames)",
            "target owned <= 150 instructions per 64-byte frame per direction, lockstep load: met (most: 140.00)",
            "target shared <= 350 instructions per 64-byte frame per direction, lockstep load: met (most: 300.00)",
        ]
    );
    let out = lines(&[row("owned", 64, 1, 256 * 151, 3)], "x");
    assert_eq!(
        &out[3..],
        [
            "repeatable: yes (the 2 runs of each case printed the same numbers)",
            "target 0.00 VM exits per frame: NOT met (most: 0.01, 3 exits in 256 frames)",
            "target owned <= 150 instructions per 64-byte frame per direction, lockstep load: NOT met (most: 151.00)",
        ]
    );
}

#[test]
fn the_bench_manifest_takes_every_case() {
    let path = manifest_path();
    assert!(path.ends_with("images/manifests/nic-bench.toml"));
    let root = workspace_root();
    let known = crate::cargo_build::known_images(&root).unwrap();
    let template = std::fs::read_to_string(&path).unwrap();
    for mode in MODES {
        let text = with_case(&template, mode, 40000, None).unwrap();
        let m = parse(&text, "nic-bench.toml", &known).unwrap();
        m.encode().unwrap();
        m.check_cores(m.run.cpus).unwrap();
        assert_eq!(m.nics.len(), 1);
        let echo = m.vms.iter().find(|v| v.image == "echo").unwrap();
        assert!(
            echo.args
                .split_ascii_whitespace()
                .any(|w| w == format!("quit={QUIT_WORD}")),
            "{}",
            echo.args
        );
    }
}

const BURST: &str = "[run]\ncpus = 2\n\
    [[vm]]\nname = \"ping\"\nimage = \"pktgen\"\nnet = 1\ncores = [1]\nargs = \"mode=ping count=9\"\n\
    [[nic]]\nname = \"uplink\"\n\
    [[link]]\na = \"ping.0\"\nb = \"nic:uplink\"\n";

#[test]
fn each_burst_case_sets_the_mode_the_frame_size_and_the_bound() {
    let known = vec!["pktgen".to_string()];
    let text = with_burst_case(BURST, "owned", 1500, Some(50)).unwrap();
    let m = parse(&text, "b.toml", &known).unwrap();
    assert_eq!(m.nics[0].mode, NicMode::Owned);
    assert_eq!(m.vms[0].args, "mode=ping count=9 size=1500");
    assert_eq!(m.run.timeout_secs, 50);
    let e = with_burst_case(&BURST.replace("count=9", "size=64"), "owned", 64, None);
    assert!(e.unwrap_err().to_string().contains("must not set `size=`"));
    let e = with_burst_case(&BURST.replace("pktgen", "echo"), "owned", 64, None);
    assert!(e.unwrap_err().to_string().contains("image = \"pktgen\""));
    let e = with_burst_case("[run]\ncpus = 2\n", "owned", 64, None);
    assert!(e.unwrap_err().to_string().contains("exactly one [[nic]]"));
}

#[test]
fn the_burst_manifest_takes_every_case() {
    let root = workspace_root();
    let known = crate::cargo_build::known_images(&root).unwrap();
    let template = std::fs::read_to_string(burst_manifest_path()).unwrap();
    for mode in MODES {
        for size in FRAME_SIZES {
            let text = with_burst_case(&template, mode, size, None).unwrap();
            let m = parse(&text, "nic-bench-burst.toml", &known).unwrap();
            m.encode().unwrap();
            m.check_cores(m.run.cpus).unwrap();
            let ping = m.vms.iter().find(|v| v.image == "pktgen").unwrap();
            assert!(ping.args.contains("mode=ping"), "{}", ping.args);
            assert!(
                ping.args.ends_with(&format!(" size={size}")),
                "{}",
                ping.args
            );
        }
    }
}
