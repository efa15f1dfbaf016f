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
    let r = Row::from_report("shared", 64, 1, &report(&[WINDOW])).unwrap();
    assert_eq!(
        r,
        Row {
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
    let e = Row::from_report("shared", 64, 1, &report(&[])).unwrap_err();
    assert!(e.to_string().contains("no `nic-window` record"), "{e}");
    let empty = "@corral nic-window nic=0 frames=256 exits=0 rx_busy=1 tx_frames=0 tx_busy=0";
    let e = Row::from_report("shared", 64, 1, &report(&[empty])).unwrap_err();
    assert!(e.to_string().contains("no frames"), "{e}");
}

fn row(mode: &str, size: u32, run: u32, rx_busy: u64, exits: u64) -> Row {
    Row {
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
    assert_eq!(unrepeatable(&differ), ["owned 64", "shared 1500"]);
    let out = lines(&differ, "x");
    assert!(
        out.iter()
            .any(|l| l == "repeatable: NO (runs differ for owned 64, shared 1500)"),
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
        "mode    frame  window  exits/frame  rx instr/frame  tx instr/frame  run"
    );
    assert_eq!(
        out[2],
        "shared     64     256         0.00             300             100    1"
    );
    assert_eq!(
        &out[6..],
        [
            "repeatable: yes (the 2 runs of each case printed the same numbers)",
            "target 0.00 VM exits per frame: met (most: 0.00, 0 exits in 256 frames)",
            "target owned <= 150 instructions per 64-byte frame per direction: met (most: 140.00)",
            "target shared <= 350 instructions per 64-byte frame per direction: met (most: 300.00)",
        ]
    );
    let out = lines(&[row("owned", 64, 1, 256 * 151, 3)], "x");
    assert_eq!(
        &out[3..],
        [
            "repeatable: yes (the 2 runs of each case printed the same numbers)",
            "target 0.00 VM exits per frame: NOT met (most: 0.01, 3 exits in 256 frames)",
            "target owned <= 150 instructions per 64-byte frame per direction: NOT met (most: 151.00)",
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
