//! The tap backend end to end: the test makes its own network namespace
//! with a tap device in it, the tool runs the emulator inside it (`[[nic]]
//! netns`), and real clients inside it (`curl`, `socat`) reach `httpd` and
//! `echo` behind one e1000 card on the tap device. Test traffic stays in
//! that namespace; the namespace goes away at the end, pass or fail.
//!
//! Needs root (tap devices and namespaces). Not root: the scenario is
//! skipped and only the tool's refusal is checked.

use integration::{assert_exited, nic, nic_port, num, refused, run, scratch, write_manifest};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The tap device inside the namespace.
const TAP: &str = "corral0";
/// The namespace's own address on the tap device.
const HOST_IP: &str = "10.0.9.1/24";
/// The guests' addresses.
const WEB_IP: &str = "10.0.9.2";
const ECHO_IP: &str = "10.0.9.3";
/// The tool's wall-clock bound for the run, seconds.
const RUN_TIMEOUT: &str = "300";
/// How long the UDP client keeps probing a server that is booting.
const READY_WITHIN: Duration = Duration::from_secs(240);
/// How long one probe waits for its echo.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long a datagram may take to come back once the server answers.
const ECHO_WAIT: Duration = Duration::from_secs(10);
/// Datagrams sent once the echo server answered.
const DATAGRAMS: usize = 20;
/// HTTP requests the test makes (httpd exits 0 after this many).
const REQUESTS: u64 = 4;

fn is_root() -> bool {
    boot::toml_manifest::running_as_root().unwrap_or(false)
}

fn program(name: &str, package: &str) -> PathBuf {
    boot::tools::ensure_program(name, package, &|m| eprintln!("nic_tap test: {m}"))
        .unwrap_or_else(|e| panic!("{name} is needed by this test: {e}"))
}

/// Runs `ip ARGS`, panicking with its error output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace this test made, deleted when dropped (also when
/// the test panics): what still runs in it (the emulator, a client) is
/// killed by process ID first, then the namespace is deleted, which
/// destroys its tap device.
struct Netns {
    name: String,
}

impl Netns {
    /// Makes namespace `name` with loopback up and tap device [`TAP`] at
    /// [`HOST_IP`], up.
    fn create(name: &str) -> Netns {
        let ns = Netns::empty(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.ip(&["addr", "add", HOST_IP, "dev", TAP]);
        ns.ip(&["link", "set", TAP, "up"]);
        ns
    }

    /// Makes namespace `name` with nothing in it.
    fn empty(name: &str) -> Netns {
        assert!(
            !Path::new(boot::toml_manifest::NETNS_DIR)
                .join(name)
                .exists(),
            "network namespace {name} exists already (left by a killed test run?): delete it with `ip netns del {name}`"
        );
        ip(&["netns", "add", name]);
        // From here on the guard cleans up, even if the set-up fails.
        Netns {
            name: name.to_string(),
        }
    }

    /// Runs `ip -n NAME ARGS`.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A command that runs `program` inside the namespace.
    fn exec(&self, program: &Path) -> Command {
        boot::netns::command(Some(&self.name), program)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                eprintln!(
                    "nic_tap test: killing process {pid}, still running in {}",
                    self.name
                );
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !deleted.is_ok_and(|s| s.success()) {
            eprintln!(
                "nic_tap test: could not delete network namespace {}",
                self.name
            );
        }
    }
}

/// `socat` inside the namespace sending each piece written to it as one
/// datagram to the echo server, and handing back each line that comes
/// back. `UDP-SENDTO` uses an unconnected socket, so the ICMP errors of
/// probes sent before the server is up do not end it.
struct UdpClient {
    child: Child,
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl UdpClient {
    fn start(ns: &Netns, socat: &Path, server: &str) -> UdpClient {
        let mut child = ns
            .exec(socat)
            // -t: after its input ends, socat still waits this long for
            // answers; -T: it gives up after this long without traffic.
            .args(["-t", "3", "-T", RUN_TIMEOUT, "-"])
            .arg(format!("UDP-SENDTO:{server}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start socat in the namespace");
        let stdin = child.stdin.take().expect("socat's stdin");
        let stdout = child.stdout.take().expect("socat's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        UdpClient {
            child,
            stdin: Some(stdin),
            lines,
        }
    }

    /// Sends `text` as one datagram (socat reads it in one piece: nothing
    /// else is written until its answer came or its wait ended).
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("socat's input is open");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to socat");
    }

    /// Sends `text` as the last datagram and closes socat's input; socat
    /// sends it, waits a little for answers and ends. Returns the lines
    /// that came back meanwhile (the last one may lack its newline).
    fn finish(&mut self, text: &str) -> Vec<String> {
        self.send(text);
        drop(self.stdin.take());
        let deadline = Instant::now() + ECHO_WAIT;
        while self.child.try_wait().expect("wait for socat").is_none() {
            assert!(Instant::now() < deadline, "socat did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its output is closed now: the reader has sent every line.
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            lines.push(line);
        }
        lines
    }

    /// The next line that is not `skip`, if one comes within `within`.
    fn recv_other_than(&self, skip: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line == skip => continue,
                Ok(line) => return Some(line),
                Err(_) => return None,
            }
        }
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One curl transfer: status code, new connections it made, body.
struct Fetched {
    code: u16,
    connects: u32,
    body: String,
}

/// Fetches `paths` from `httpd` with one `curl` run inside the namespace
/// (so over one connection when the server keeps it alive); retries while
/// the server is not up yet, every attempt bounded.
fn fetch(ns: &Netns, curl: &Path, dir: &Path, paths: &[&str]) -> Vec<Fetched> {
    let mut cmd = ns.exec(curl);
    cmd.args(["-sS", "--connect-timeout", "5", "--max-time", "30"])
        .args(["--retry", "20", "--retry-all-errors", "--retry-delay", "2"])
        .args(["--retry-max-time", "120"])
        .args(["-w", "%{http_code} %{num_connects}\n"]);
    let files: Vec<PathBuf> = (0..paths.len())
        .map(|i| dir.join(format!("body-{}-{i}", paths.join("+").replace('/', "_"))))
        .collect();
    for (path, file) in paths.iter().zip(&files) {
        cmd.arg("-o")
            .arg(file)
            .arg(format!("http://{WEB_IP}{path}"));
    }
    let out = cmd.output().expect("run curl in the namespace");
    assert!(
        out.status.success(),
        "curl {paths:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), paths.len(), "curl wrote {written:?}");
    lines
        .iter()
        .zip(&files)
        .map(|(line, file)| {
            let (code, connects) = line.split_once(' ').expect("`code connects`");
            Fetched {
                code: code.parse().expect("a status code"),
                connects: connects.parse().expect("a connection count"),
                body: std::fs::read_to_string(file).expect("curl wrote the body"),
            }
        })
        .collect()
}

#[test]
fn clients_in_a_namespace_reach_unikernels_behind_a_tap_nic() {
    if !is_root() {
        eprintln!("nic_tap test: skipped: tap devices and network namespaces need root");
        return;
    }
    program("ip", "iproute2");
    let curl = program("curl", "curl");
    let socat = program("socat", "socat");
    let ns = Netns::create(&format!("corral-t{}", std::process::id()));
    let manifest = write_manifest(
        "nic-tap",
        "tap.toml",
        &format!(
            "[run]\ncpus = 2\n\
             [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip={ECHO_IP}/24 port=7 quit=bye idle=100000000000\"\n\
             [[vm]]\nname = \"web\"\nimage = \"httpd\"\nmemory = \"4M\"\nnet = 1\n\
             args = \"ip={WEB_IP}/24 requests={REQUESTS} idle=100000000000\"\n\
             [[nic]]\nname = \"lan\"\nbackend = \"tap\"\ntap = \"{TAP}\"\nnetns = \"{}\"\n\
             [[link]]\na = \"echo.0\"\nb = \"nic:lan\"\n\
             [[link]]\na = \"web.0\"\nb = \"nic:lan\"\n",
            ns.name
        ),
    );
    let (done, finished) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        let out = run("nic-tap", &manifest, &["--timeout", RUN_TIMEOUT]);
        let _ = done.send(());
        out
    });

    // UDP through socat: probe until the echo server answers, then every
    // datagram comes back, in order, then `bye` ends the server.
    let mut udp = UdpClient::start(&ns, &socat, &format!("{ECHO_IP}:7"));
    let start = Instant::now();
    let mut probes = 0;
    loop {
        assert!(
            start.elapsed() < READY_WITHIN && finished.try_recv().is_err(),
            "the echo server never answered ({probes} probes in {:?})",
            start.elapsed()
        );
        probes += 1;
        udp.send("probe\n");
        if let Ok(line) = udp.lines.recv_timeout(PROBE_WAIT) {
            assert_eq!(line, "probe");
            break;
        }
    }
    eprintln!(
        "nic_tap test: echo answered after {probes} probes, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for i in 0..DATAGRAMS {
        let msg = format!("datagram {i} {}", "x".repeat(i * 50));
        udp.send(&format!("{msg}\n"));
        // Late answers to probes may come first.
        let got = udp.recv_other_than("probe", ECHO_WAIT);
        assert_eq!(got.as_deref(), Some(msg.as_str()), "datagram {i}");
    }
    // The quit word is echoed too, then the server ends.
    let last = udp.finish("bye");
    assert!(
        last.iter().any(|l| l == "bye"),
        "no echo of `bye`: {last:?}"
    );
    drop(udp);

    // HTTP with curl: the page, the counters as JSON, then two requests
    // over one connection.
    let dir = scratch("nic-tap-bodies");
    let page = fetch(&ns, &curl, &dir, &["/"]);
    assert_eq!(page[0].code, 200);
    assert!(page[0].body.contains("Hello from web"), "{}", page[0].body);
    let stats = fetch(&ns, &curl, &dir, &["/stats"]);
    assert_eq!(stats[0].code, 200);
    let json: Value = serde_json::from_str(&stats[0].body).expect("/stats is JSON");
    assert_eq!(json["vm"], "web");
    assert!(num(&json, "requests") >= 1, "{json}");
    let both = fetch(&ns, &curl, &dir, &["/", "/no-such-page"]);
    assert_eq!((both[0].code, both[1].code), (200, 404));
    assert_eq!(
        both[1].connects, 0,
        "the second request should reuse the first one's connection"
    );

    let out = runner.join().expect("the run");
    out.assert_succeeded();
    out.assert_completed();
    assert_exited(out.vm("echo"), 0);
    assert_exited(out.vm("web"), 0);
    let echoed = out.metric("echo", "echoed");
    assert!(echoed > DATAGRAMS as u64, "echoed {echoed}");
    assert!(echoed <= (DATAGRAMS + probes + 1) as u64, "echoed {echoed}");
    assert_eq!(out.metric("web", "requests"), REQUESTS);
    assert_eq!(out.metric("web", "bad_requests"), 0);

    let lan = nic(&out.report, "lan");
    let wire = &lan["wire"];
    for key in ["drop_runt", "rx_errors"] {
        assert_eq!(num(wire, key), 0, "{lan:#}");
    }
    let echo = nic_port(lan, "echo.0");
    let web = nic_port(lan, "web.0");
    for (port, least) in [(echo, DATAGRAMS as u64), (web, REQUESTS)] {
        assert!(num(port, "rx_frames") > least, "{lan:#}");
        assert!(num(port, "tx_frames") > least, "{lan:#}");
        assert_eq!(num(port, "drop_spoofed"), 0, "{lan:#}");
    }
    // What the guests sent is what went onto the wire, and the wire
    // brought in at least what reached them.
    assert_eq!(
        num(wire, "tx_frames"),
        num(echo, "tx_frames") + num(web, "tx_frames"),
        "{lan:#}"
    );
    assert!(num(wire, "rx_frames") >= num(echo, "rx_frames").max(num(web, "rx_frames")));
    drop(ns);
}

/// A one-VM manifest with a tap NIC in namespace `ns`.
fn tap_manifest(ns: &str) -> String {
    format!(
        "[run]\ncpus = 2\n\
         [[vm]]\nname = \"echo\"\nimage = \"echo\"\nmemory = \"4M\"\nnet = 1\n\
         [[nic]]\nname = \"lan\"\nbackend = \"tap\"\ntap = \"{TAP}\"\nnetns = \"{ns}\"\n\
         [[link]]\na = \"echo.0\"\nb = \"nic:lan\"\n"
    )
}

/// Before anything is built or booted, the tool says which namespace or
/// tap device is missing and how to make it (as root), or that tap needs
/// root.
#[test]
fn a_missing_namespace_or_tap_is_named_before_boot() {
    let ns = format!("corral-n{}", std::process::id());
    let e = refused("nic-tap-missing", &tap_manifest(&ns));
    if is_root() {
        assert!(
            e.ends_with(&format!(
                "nic `lan`: field `netns`: no network namespace `{ns}` (/run/netns/{ns} does not exist); create it with `ip netns add {ns}` and the tap device in it with `ip -n {ns} tuntap add dev {TAP} mode tap`, then give it an address and bring it up (`ip -n {ns} addr add 10.0.9.1/24 dev {TAP}`, `ip -n {ns} link set {TAP} up`)"
            )),
            "{e}"
        );
        // The namespace, but no tap device in it.
        let empty = Netns::empty(&ns);
        let e = refused("nic-tap-no-device", &tap_manifest(&ns));
        assert!(
            e.ends_with(&format!(
                "nic `lan`: field `tap`: no device `{TAP}` in network namespace `{ns}`; create it with `ip -n {ns} tuntap add dev {TAP} mode tap`, then give it an address and bring it up (`ip -n {ns} addr add 10.0.9.1/24 dev {TAP}`, `ip -n {ns} link set {TAP} up`)"
            )),
            "{e}"
        );
        drop(empty);
        assert!(!Path::new("/run/netns").join(&ns).exists());
    } else {
        assert!(
            e.contains("nic `lan`: field `backend`: the tap backend"),
            "{e}"
        );
    }
}
