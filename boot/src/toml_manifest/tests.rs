//! Tests of the TOML manifest: every field, its default and its errors.

use super::raw::line_col;
use super::*;

fn images() -> Vec<String> {
    ["hello", "escape", "badcall", "spin"]
        .map(String::from)
        .to_vec()
}

fn ok(text: &str) -> Manifest {
    parse(text, "m.toml", &images()).unwrap()
}

fn err(text: &str) -> String {
    parse(text, "m.toml", &images()).unwrap_err().to_string()
}

/// One `[[vm]]` named `a` with image hello and the extra lines `extra`.
fn vm_a(extra: &str) -> String {
    format!("[[vm]]\nname = \"a\"\nimage = \"hello\"\n{extra}")
}

#[test]
fn defaults_fill_in() {
    let m = ok("[[vm]]\nname = \"hello\"\nimage = \"hello\"\n");
    assert_eq!(m.run, RunSettings::default());
    assert_eq!(m.timeslice, 0);
    assert_eq!(
        m.vms,
        vec![VmConfig {
            name: "hello".into(),
            entry: "hello".into(),
            clone: None,
            image: "hello".into(),
            image_file: None,
            cores: 0,
            memory: 256 << 10,
            args: String::new(),
            budget: 0,
            restart: Restart::Never,
            restart_limit: 0,
            net_ports: 0,
            console: false,
            control: false,
            devices: Vec::new(),
            expect: Expectation::Exit(0),
        }]
    );
    assert!(m.links.is_empty());
    assert_eq!(m.name_width(), 5);
    assert!(m.vms[0].core_list().is_empty());
}

#[test]
fn every_field_is_read() {
    let m = ok(r#"
[run]
cpu_model = "corei7_skylake_x"
cpus = 2
timeout = 30
memory = 512
timeslice = 1000000

[[vm]]
name = "a"
image = "badcall"
cores = [1]
memory = "4M"
args = "msr x=1"
budget = 1000
restart = "on-failure"
restart_limit = 5
expect = "killed:MSR"

[[vm]]
name = "b"
image = "hello"
memory = 8388608
expect = "exit:3"
"#);
    assert_eq!(
        m.run,
        RunSettings {
            cpu_model: "corei7_skylake_x".into(),
            cpus: 2,
            timeout_secs: 30,
            memory_mib: 512
        }
    );
    assert_eq!(m.timeslice, 1_000_000);
    let a = &m.vms[0];
    assert_eq!((a.cores, a.memory, a.budget), (0b10, 4 << 20, 1000));
    assert_eq!((a.restart, a.restart_limit), (Restart::OnFailure, 5));
    assert_eq!(a.args, "msr x=1");
    assert_eq!(a.expect, Expectation::Killed(Some("MSR".into())));
    assert_eq!(m.vms[1].memory, 8 << 20);
    assert_eq!(m.vms[1].cores, 0);
    assert_eq!(m.vms[1].expect, Expectation::Exit(3));
    assert_eq!(m.images(), vec!["badcall", "hello"]);
    m.check_cores(2).unwrap();
    assert_eq!(
        m.check_cores(1).unwrap_err().to_string(),
        "m.toml: vm `a`: field `cores`: core 1 does not exist: this run has 1 CPU"
    );
}

#[test]
fn cores_become_a_bitmask() {
    let m = ok(&vm_a("cores = [1, 2]\n"));
    assert_eq!(m.vms[0].cores, 0b110);
    assert_eq!(m.vms[0].core_list(), [1, 2]);
    let m = ok(&vm_a("cores = [3, 0]\n"));
    assert_eq!(m.vms[0].cores, 0b1001);
    assert_eq!(m.vms[0].core_list(), [0, 3]);
}

#[test]
fn bad_cores_are_refused() {
    let e = err(&vm_a("cores = []\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: field `cores`: the list is empty"),
        "{e}"
    );
    let e = err(&vm_a("cores = [64]\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: field `cores`: core 64 is outside 0..=63"),
        "{e}"
    );
    let e = err(&vm_a("cores = [1, 1]\n"));
    assert!(e.contains("core 1 is listed twice"), "{e}");
    let e = err(&vm_a("cores = 2\n"));
    assert!(e.starts_with("m.toml:4:"), "{e}");
    let e = err(&vm_a("cores = [-1]\n"));
    assert!(e.starts_with("m.toml:4:"), "{e}");
    let e = err(&vm_a("core = 0\n"));
    assert!(
        e.contains("unknown field `core`") && e.contains("`cores`"),
        "{e}"
    );
}

#[test]
fn a_core_the_run_lacks_names_the_vm_and_the_core() {
    let m = ok(
        "[run]\ncpus = 4\n[[vm]]\nname = \"web\"\nimage = \"hello\"\ncount = 3\ncores = [1, 5]\n",
    );
    assert_eq!(
        m.check_cores(4).unwrap_err().to_string(),
        "m.toml: vm `web`: field `cores`: core 5 does not exist: this run has 4 CPUs"
    );
    m.check_cores(6).unwrap();
}

#[test]
fn count_expands_into_named_clones() {
    let m = ok(&vm_a(
        "count = 3\ncores = [0]\nargs = \"x=1\"\nmemory = \"512K\"\nexpect = \"exit:2\"\n",
    ));
    let names: Vec<&str> = m.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["a-0", "a-1", "a-2"]);
    for (i, vm) in m.vms.iter().enumerate() {
        assert_eq!(vm.entry, "a");
        assert_eq!(vm.clone, Some(i as u32));
        assert_eq!((vm.cores, vm.memory), (1, 512 << 10));
        assert_eq!(vm.args, "x=1");
        assert_eq!(vm.expect, Expectation::Exit(2));
    }
    let m = ok(&vm_a("count = 1\n"));
    assert_eq!(m.vms[0].name, "a-0");
    let bytes = ok(&vm_a("count = 3\n")).encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed.get(2).map(|v| v.name), Some("a-2"));
}

#[test]
fn bad_counts_are_refused() {
    let e = err(&vm_a("count = 0\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: field `count`: 0 is outside 1..=4096"),
        "{e}"
    );
    let e = err(&vm_a("count = 4097\n"));
    assert!(e.contains("field `count`: 4097 is outside 1..=4096"), "{e}");
    let two = format!(
        "{}{}",
        vm_a("count = 4000\n"),
        vm_a("count = 97\n").replace("\"a\"", "\"b\"")
    );
    let e = err(&two);
    assert!(
        e.contains("vm `b`: field `count`: 97 is outside 1..=96"),
        "{e}"
    );
    let e = err(&vm_a("count = -1\n"));
    assert!(e.starts_with("m.toml:4:"), "{e}");
}

#[test]
fn clone_names_must_fit_after_expansion() {
    let name = "n".repeat(30);
    let text = format!("[[vm]]\nname = \"{name}\"\nimage = \"hello\"\ncount = 10\n");
    parse(&text, "m.toml", &images()).unwrap();
    let text = format!("[[vm]]\nname = \"{name}\"\nimage = \"hello\"\ncount = 11\n");
    let e = parse(&text, "m.toml", &images()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "m.toml: vm `{name}`: field `name`: with count = 11 the clone names run up to `{name}-10` (33 bytes), longer than 32"
        )
    );
}

#[test]
fn clone_names_must_stay_unique() {
    let text = format!(
        "{}{}",
        vm_a("count = 2\n"),
        "[[vm]]\nname = \"a-1\"\nimage = \"hello\"\n"
    );
    assert_eq!(
        err(&text),
        "m.toml: vm `a-1`: manifest vm 2: field `name`: same name as vm 1"
    );
    let text = format!(
        "{}{}",
        "[[vm]]\nname = \"a-0\"\nimage = \"hello\"\n",
        vm_a("count = 2\n")
    );
    assert_eq!(
        err(&text),
        "m.toml: vm `a-0`: manifest vm 1: field `name`: same name as vm 0"
    );
}

#[test]
fn restart_policies_and_limits() {
    let m = ok(&vm_a("restart = \"on-failure\"\n"));
    assert_eq!(
        (m.vms[0].restart, m.vms[0].restart_limit),
        (Restart::OnFailure, DEFAULT_RESTART_LIMIT)
    );
    assert_eq!(DEFAULT_RESTART_LIMIT, 3);
    let m = ok(&vm_a("restart = \"on-failure\"\nrestart_limit = 0\n"));
    assert_eq!(m.vms[0].restart_limit, 0);
    let m = ok(&vm_a("restart = \"on-failure\"\nrestart_limit = 1000\n"));
    assert_eq!(m.vms[0].restart_limit, 1000);
    let m = ok(&vm_a("restart = \"never\"\n"));
    assert_eq!(
        (m.vms[0].restart, m.vms[0].restart_limit),
        (Restart::Never, 0)
    );
    let bytes = ok(&vm_a("restart = \"on-failure\"\nrestart_limit = 2\n"))
        .encode()
        .unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap().get(0).unwrap();
    assert_eq!(
        (parsed.restart, parsed.restart_limit),
        (Restart::OnFailure, 2)
    );
}

#[test]
fn bad_restart_settings_are_refused() {
    let e = err(&vm_a("restart_limit = 2\n"));
    assert_eq!(
        e,
        "m.toml: vm `a`: field `restart_limit`: only allowed with `restart = \"on-failure\"`"
    );
    let e = err(&vm_a("restart = \"never\"\nrestart_limit = 0\n"));
    assert!(e.contains("field `restart_limit`: only allowed"), "{e}");
    let e = err(&vm_a("restart = \"on-failure\"\nrestart_limit = 1001\n"));
    assert!(
        e.contains("vm `a`: manifest vm 0: field `restart_limit`: 1001 is outside 0..=1000"),
        "{e}"
    );
    let e = err(&vm_a("restart = \"always\"\n"));
    assert!(
        e.starts_with("m.toml:4:") && e.contains("`never`") && e.contains("`on-failure`"),
        "{e}"
    );
    let e = err(&vm_a("restart = \"on-failure\"\nrestart_limit = -1\n"));
    assert!(e.starts_with("m.toml:5:"), "{e}");
}

#[test]
fn timeslices_are_checked() {
    let run = |t: &str| format!("[run]\ntimeslice = {t}\n{}", vm_a(""));
    assert_eq!(ok(&run("0")).timeslice, 0);
    assert_eq!(ok(&run("10000")).timeslice, 10_000);
    assert_eq!(ok(&run("1099511627776")).timeslice, 1 << 40);
    let bytes = ok(&run("2000000")).encode().unwrap();
    assert_eq!(
        manifest::Manifest::parse(&bytes).unwrap().timeslice(),
        2_000_000
    );
    for bad in ["9999", "1099511627777", "1"] {
        let e = err(&run(bad));
        assert_eq!(
            e,
            format!(
                "m.toml: [run] `timeslice`: {bad} is outside 10000..=1099511627776 instructions (0 = the hypervisor's default)"
            )
        );
    }
    assert!(err(&run("-5")).starts_with("m.toml:2:"));
}

#[test]
fn clones_can_have_their_own_expectations() {
    let m = ok(&vm_a(
        "count = 4\nexpect = \"exit:0\"\nexpect_clone = { 1 = \"killed:triple fault\", 3 = \"exit:7\" }\n",
    ));
    let expects: Vec<String> = m.vms.iter().map(|v| v.expect.to_string()).collect();
    assert_eq!(
        expects,
        ["exit:0", "killed:triple fault", "exit:0", "exit:7"]
    );
    let m = ok(&vm_a("count = 2\n[vm.expect_clone]\n0 = \"killed\"\n"));
    assert_eq!(m.vms[0].expect, Expectation::Killed(None));
    assert_eq!(m.vms[1].expect, Expectation::Exit(0));
}

#[test]
fn bad_clone_expectations_are_refused() {
    let e = err(&vm_a("expect_clone = { 0 = \"killed\" }\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: field `expect_clone`: only allowed with `count`"),
        "{e}"
    );
    let e = err(&vm_a("count = 2\nexpect_clone = { 2 = \"killed\" }\n"));
    assert_eq!(
        e,
        "m.toml: vm `a`: field `expect_clone`: `2` is not a clone index of this entry (0..=1)"
    );
    let e = err(&vm_a("count = 2\nexpect_clone = { one = \"killed\" }\n"));
    assert!(e.contains("`one` is not a clone index"), "{e}");
    let e = err(&vm_a("count = 2\nexpect_clone = { 1 = \"dead\" }\n"));
    assert!(
        e.starts_with(
            "m.toml: vm `a`: field `expect_clone`: clone 1: `dead` is not an expectation"
        ),
        "{e}"
    );
    let e = err(&vm_a("count = 2\nexpect_clone = { 1 = 3 }\n"));
    assert!(e.starts_with("m.toml:5:"), "{e}");
}

#[test]
fn encodes_what_vmm_abi_parses() {
    let m = ok(
        "[[vm]]\nname = \"x\"\nimage = \"hello\"\nargs = \"hi\"\ncores = [0, 2]\n[[vm]]\nname = \"y\"\nimage = \"hello\"\n",
    );
    let bytes = m.encode().unwrap();
    let parsed = manifest::Manifest::parse(&bytes).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed.get(0), Some(m.vms[0].spec()));
    assert_eq!(parsed.get(0).map(|v| v.cores), Some(0b101));
    assert_eq!(parsed.get(1).map(|v| v.name), Some("y"));
}

#[test]
fn missing_file_is_named() {
    let e = load(Path::new("/nonexistent/x.toml"), &images()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read manifest /nonexistent/x.toml"),
        "{e}"
    );
}

#[test]
fn bad_toml_names_the_line() {
    let e = err("[[vm]]\nname = \"a\"\nimage = hello\n");
    assert!(e.starts_with("m.toml:3:"), "{e}");
}

#[test]
fn unknown_keys_are_refused() {
    let e = err(&vm_a("colour = 1\n"));
    assert!(
        e.starts_with("m.toml:4:") && e.contains("unknown field `colour`"),
        "{e}"
    );
    let e = err(&format!("[run]\nspeed = 1\n{}", vm_a("")));
    assert!(e.contains("unknown field `speed`"), "{e}");
    let e = err(&format!("[machine]\n{}", vm_a("")));
    assert!(e.contains("unknown field `machine`"), "{e}");
}

#[test]
fn missing_required_fields_are_named() {
    assert!(err("[[vm]]\nname = \"a\"\n").contains("missing field `image`"));
    assert!(err("[[vm]]\nimage = \"hello\"\n").contains("missing field `name`"));
    assert!(err("").contains("no [[vm]]"));
}

#[test]
fn bad_memory_is_refused() {
    let e = err(&vm_a("memory = \"2X\"\n"));
    assert!(e.starts_with("m.toml:4:") && e.contains("\"2X\""), "{e}");
    let e = err(&vm_a("memory = -1\n"));
    assert!(e.contains("negative"), "{e}");
    let e = err(&vm_a("memory = true\n"));
    assert!(e.contains("byte count"), "{e}");
    let e = err(&vm_a("memory = \"4K\"\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: manifest vm 0: field `memory`: 4096 is outside"),
        "{e}"
    );
    let e = err(&vm_a("memory = 262145\n"));
    assert!(
        e.contains("field `memory`") && e.contains("multiple"),
        "{e}"
    );
}

#[test]
fn bad_names_and_fields_name_the_vm() {
    let e = err("[[vm]]\nname = \"a b\"\nimage = \"hello\"\n");
    assert!(
        e.starts_with("m.toml: vm `a b`: manifest vm 0: field `name`"),
        "{e}"
    );
    let e = err(&vm_a("args = \"tab\\there\"\n"));
    assert!(e.contains("vm `a`") && e.contains("field `args`"), "{e}");
}

#[test]
fn duplicate_names_are_refused() {
    let e = err(&format!("{}{}", vm_a(""), vm_a("")));
    assert_eq!(
        e,
        "m.toml: vm `a`: manifest vm 1: field `name`: same name as vm 0"
    );
}

#[test]
fn bad_expect_is_refused() {
    let e = err(&vm_a("expect = \"exit:zero\"\n"));
    assert!(
        e.starts_with("m.toml: vm `a`: field `expect`:") && e.contains("exit:N"),
        "{e}"
    );
}

#[test]
fn unknown_image_lists_known_ones() {
    let e = err("[[vm]]\nname = \"a\"\nimage = \"nope\"\ncount = 2\n");
    assert_eq!(
        e,
        "m.toml: vm `a`: field `image`: no image named `nope` (known images: hello, escape, badcall, spin)"
    );
}

#[test]
fn bad_run_settings_are_refused() {
    let vm = vm_a("");
    let e = err(&format!("[run]\ncpu_model = \"z80\"\n{vm}"));
    assert!(
        e.contains("[run] `cpu_model`") && e.contains("corei7_icelake_u"),
        "{e}"
    );
    assert!(err(&format!("[run]\ncpus = 0\n{vm}")).contains("`cpus`"));
    assert!(err(&format!("[run]\ncpus = -1\n{vm}")).starts_with("m.toml:2:"));
    assert!(err(&format!("[run]\ntimeout = 0\n{vm}")).contains("`timeout`"));
    assert!(err(&format!("[run]\nmemory = 1\n{vm}")).contains("`memory`"));
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("4096"), Some(4096));
    assert_eq!(parse_size("64K"), Some(64 << 10));
    assert_eq!(parse_size("256K"), Some(256 << 10));
    assert_eq!(parse_size("2M"), Some(2 << 20));
    assert_eq!(parse_size("2m"), Some(2 << 20));
    assert_eq!(parse_size("2MiB"), Some(2 << 20));
    assert_eq!(parse_size(" 1G "), Some(1 << 30));
    assert_eq!(parse_size("3 M"), Some(3 << 20));
    for bad in [
        "",
        "M",
        "2X",
        "1.5M",
        "-2M",
        "2MM",
        "99999999999999999999G",
        "17179869184G",
    ] {
        assert_eq!(parse_size(bad), None, "{bad}");
    }
}

#[test]
fn line_and_column_count_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn the_shipped_manifests_are_valid() {
    let root = crate::cargo_build::workspace_root();
    let known = crate::cargo_build::known_images(&root).unwrap();
    let dir = root.join("images").join("manifests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let m = load(&path, &known).unwrap_or_else(|e| panic!("{e}"));
            m.encode().unwrap_or_else(|e| panic!("{e}"));
            m.check_cores(m.run.cpus).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 7, "only {seen} manifests in {}", dir.display());
    let load = |name: &str| load(&dir.join(name), &known).unwrap();
    let fleet = load("fleet.toml");
    assert_eq!((fleet.vms.len(), fleet.run.cpus), (64, 4));
    let pinned = |mask: u64| fleet.vms.iter().filter(|v| v.cores == mask).count();
    assert_eq!((pinned(0b1), pinned(0b110), pinned(0)), (16, 16, 32));
    let restart = load("restart.toml");
    let expects: Vec<String> = restart.vms.iter().map(|v| v.expect.to_string()).collect();
    assert_eq!(
        expects,
        ["exit:0", "killed:triple fault", "exit:0", "exit:0"]
    );
    assert!(restart.vms.iter().all(|v| v.restart_limit == 2));
    let timeslice = load("timeslice.toml");
    assert_eq!(timeslice.timeslice, 1_000_000);
    assert!(timeslice.vms.iter().all(|v| v.cores == 1));
    let pinning = load("pinning.toml");
    let masks: Vec<u64> = pinning.vms.iter().map(|v| v.cores).collect();
    assert_eq!(masks, [1, 2, 4, 8, 0]);
    let nfv = load("nfv.toml");
    let ends: Vec<String> = nfv.links.iter().map(LinkConfig::ends).collect();
    assert_eq!(
        ends,
        ["gen.0 <-> fw.0", "fw.1 <-> nat.0", "nat.1 <-> sink.0"]
    );
    assert!(nfv.links.iter().all(|l| l.core == 0));
    assert!(nfv.vms.iter().all(|v| v.cores == 0b10));
    assert_eq!(nfv.run.cpus, 2);
    let ringbad = load("ringbad.toml");
    assert_eq!(ringbad.links.len(), 3);
    let echo = load("echo.toml");
    assert_eq!(echo.links.len(), 1);
}

#[test]
fn an_image_from_a_file_is_taken_by_path() {
    let dir = std::env::temp_dir().join(format!("corral-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    let elf = dir.join("apps").join("my app.hvt");
    std::fs::write(&elf, b"\x7fELF").unwrap();
    let origin = dir.join("m.toml");
    let origin = origin.to_str().unwrap();
    let text = "[[vm]]\nname = \"a\"\nimage = { elf = \"apps/my app.hvt\" }\n[[vm]]\nname = \"b\"\nimage = { elf = \"apps/my app.hvt\" }\n";
    let m = parse(text, origin, &images()).unwrap();
    assert_eq!(m.vms[0].image, "file-my_app");
    assert_eq!(m.images(), vec!["file-my_app"]);
    assert_eq!(m.image_file("file-my_app"), Some(elf.as_path()));
    assert_eq!(m.image_file("hello"), None);
    // A missing file, and a field the table does not have.
    let e = parse(
        "[[vm]]\nname = \"a\"\nimage = { elf = \"nope.hvt\" }\n",
        origin,
        &images(),
    )
    .unwrap_err();
    assert!(
        e.message().contains("vm `a`: field `image`: cannot read"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("nope.hvt"), "{}", e.message());
    assert!(
        parse(
            "[[vm]]\nname = \"a\"\nimage = { elf = \"x\", abi = 1 }\n",
            origin,
            &images()
        )
        .is_err()
    );
    // Two files with one module name.
    std::fs::write(dir.join("my app.hvt"), b"\x7fELF").unwrap();
    let text = "[[vm]]\nname = \"a\"\nimage = { elf = \"apps/my app.hvt\" }\n[[vm]]\nname = \"b\"\nimage = { elf = \"my app.hvt\" }\n";
    let e = parse(text, origin, &images()).unwrap_err();
    assert!(
        e.message().contains("would both be module `file-my_app`"),
        "{}",
        e.message()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_control_capability_is_granted_to_one_vm_of_a_service_run() {
    let service = "[run]\ncpus = 2\nmode = \"service\"\n";
    let m = ok(&format!("{service}{}", vm_a("caps = [\"control\"]\n")));
    assert!(m.vms[0].control);
    assert!(m.vms[0].spec().control);
    assert!(!ok(&vm_a("")).vms[0].control);
    assert_eq!(
        err(&vm_a("caps = [\"control\"]\n")),
        "m.toml: vm `a`: field `caps`: `control` needs a service run ([run] mode = \"service\")"
    );
    assert_eq!(
        err(&format!("{service}{}", vm_a("caps = [\"root\"]\n"))),
        "m.toml: vm `a`: field `caps`: unknown capability `root` (known: `control`)"
    );
    assert_eq!(
        err(&format!(
            "{service}{}",
            vm_a("caps = [\"control\"]\ncount = 2\n")
        )),
        "m.toml: vm `a`: field `caps`: `control` is not allowed with `count`: one VM holds the control channel"
    );
    let two = format!(
        "{service}{}[[vm]]\nname = \"b\"\nimage = \"hello\"\ncaps = [\"control\"]\n",
        vm_a("caps = [\"control\"]\n")
    );
    assert_eq!(
        err(&two),
        "m.toml: vm `b`: field `caps`: `control` is already held by vm `a` (one VM holds the control channel)"
    );
}
