//! `hvt_echo`: a Solo5 hvt unikernel serving UDP echo on its NET_BASIC device `service0` without a TCP/IP stack (images' `nf::udp_echo`): it announces its address with a gratuitous ARP, answers ARP for it, and sends every datagram to its port back, until the datagram `quit=WORD` names (echoed, then SUCCESS, exit 0) or `idle_ms` without traffic (exit 1). Arguments: `ip=A.B.C.D` (default 10.0.2.15), `port=P` (7), `quit=WORD`, `idle_ms=N` (60000), `attack=netbuf` (a hostile guest: `net_write` of a buffer running past its memory into the shared ring or the reserve where its rings are, which must stop it by name), `attack=ringbuf` (the same request through the shared ring), `io=hypercall` (the net hypercalls even when the shared ring is offered); bad ones exit 2, a missing device 3.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

guest_lib::hvt_net_entry!(hvt_main, net = ["service0"]);

#[cfg(target_os = "none")]
mod echo {
    use core::fmt::Write;
    use core::net::Ipv4Addr;
    use guest_lib::hvt::{
        Puts, cmdline, net_call, net_device, net_read, net_write, poll, ring_in_use,
        ring_write_raw, use_hypercalls, walltime,
    };
    use images::nf::packet::MAX_FRAME_LEN;
    use images::nf::udp_echo::{Answer, Echo};
    use vmm_abi::hvt::{BootInfo, R_AGAIN, R_OK};

    /// Milliseconds without traffic after which it gives up.
    const DEFAULT_IDLE_MS: u64 = 60_000;
    /// Nanoseconds per millisecond.
    const MS: u64 = 1_000_000;

    /// What the command line asks for.
    struct Settings<'a> {
        ip: Ipv4Addr,
        port: u16,
        quit: Option<&'a str>,
        idle_ms: u64,
        attack: Option<Attack>,
        hypercalls: bool,
    }

    /// What a hostile run does.
    #[derive(Clone, Copy, PartialEq)]
    enum Attack {
        /// `net_write` hypercall across the end of its memory.
        NetBuf,
        /// The same request through the shared ring.
        RingBuf,
    }

    /// The settings, or the word that is wrong.
    fn settings(line: &str) -> Result<Settings<'_>, &str> {
        let mut s = Settings {
            ip: Ipv4Addr::new(10, 0, 2, 15),
            port: 7,
            quit: None,
            idle_ms: DEFAULT_IDLE_MS,
            attack: None,
            hypercalls: false,
        };
        for word in line.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').ok_or(word)?;
            match key {
                "ip" => s.ip = value.parse().map_err(|_| word)?,
                "port" => s.port = value.parse().ok().filter(|&p| p != 0).ok_or(word)?,
                "quit" if !value.is_empty() => s.quit = Some(value),
                "idle_ms" => s.idle_ms = value.parse().ok().filter(|&n| n > 0).ok_or(word)?,
                "attack" if value == "netbuf" => s.attack = Some(Attack::NetBuf),
                "attack" if value == "ringbuf" => s.attack = Some(Attack::RingBuf),
                "io" if value == "hypercall" => s.hypercalls = true,
                "io" if value == "ring" => s.hypercalls = false,
                _ => return Err(word),
            }
        }
        Ok(s)
    }

    /// `net_write` of `len` bytes at `data`, whatever they are.
    fn net_write_raw(handle: u64, data: u64, len: u64) -> i32 {
        net_call(true, handle, data, len).1
    }

    /// Sends `frame`; false if the device refused it.
    fn send(handle: u64, frame: &[u8]) -> bool {
        net_write(handle, frame) == R_OK
    }

    pub fn main(info: &BootInfo) -> i32 {
        let s = match settings(cmdline(info)) {
            Ok(s) => s,
            Err(word) => {
                let _ = writeln!(Puts, "hvt_echo: bad argument `{word}`");
                return 2;
            }
        };
        let Some(dev) = net_device(info, "service0") else {
            let _ = writeln!(Puts, "hvt_echo: no attached NET_BASIC device `service0`");
            return 3;
        };
        if s.hypercalls {
            use_hypercalls();
        }
        // 16 bytes below the top of its memory, 60 long: the rest lies in
        // the shared ring (or the reserve). The monitor must stop it.
        match s.attack {
            None => {}
            Some(Attack::NetBuf) => {
                let _ = writeln!(Puts, "hvt_echo: attack: net_write across the end of memory");
                net_write_raw(dev.handle, info.mem_size - 16, 60);
                let _ = writeln!(Puts, "hvt_echo: FAILURE: the attack was not stopped");
                return 4;
            }
            Some(Attack::RingBuf) => {
                let _ = writeln!(
                    Puts,
                    "hvt_echo: attack: shared-ring net_write across the end of memory"
                );
                if !ring_write_raw(dev.handle, info.mem_size - 16, 60) {
                    let _ = writeln!(Puts, "hvt_echo: FAILURE: no shared ring offered");
                    return 4;
                }
                // The request is served by a polling core: wait (an exit)
                // for the monitor to stop this guest.
                poll(2_000 * MS);
                let _ = writeln!(Puts, "hvt_echo: FAILURE: the attack was not stopped");
                return 4;
            }
        }
        let me = Echo {
            mac: dev.mac,
            ip: s.ip,
            port: s.port,
        };
        let _ = writeln!(
            Puts,
            "hvt_echo: listening on {} udp port {}, mac {:02x?}, mtu {}, io {}",
            s.ip,
            s.port,
            dev.mac,
            dev.mtu,
            if ring_in_use() { "ring" } else { "hypercall" }
        );
        if !send(dev.handle, &me.announcement()) {
            let _ = writeln!(Puts, "hvt_echo: the gratuitous ARP was refused");
        }
        let idle_ns = s.idle_ms.saturating_mul(MS);
        let mut deadline = walltime().saturating_add(idle_ns);
        let mut frame = [0u8; MAX_FRAME_LEN];
        let (mut echoed, mut arp) = (0u64, 0u64);
        loop {
            let len = match net_read(dev.handle, &mut frame) {
                Ok(len) => len,
                Err(R_AGAIN) => {
                    let now = walltime();
                    if now >= deadline {
                        let _ = writeln!(
                            Puts,
                            "hvt_echo: echoed={echoed} arp={arp} end=idle (no traffic for {} ms)",
                            s.idle_ms
                        );
                        return 1;
                    }
                    poll(deadline - now);
                    continue;
                }
                Err(ret) => {
                    let _ = writeln!(Puts, "hvt_echo: FAILURE: net_read returned {ret}");
                    return 3;
                }
            };
            deadline = walltime().saturating_add(idle_ns);
            let quit = s.quit.map(str::as_bytes);
            let Some(got) = frame.get_mut(..len) else {
                continue;
            };
            match me.answer(got, quit) {
                Answer::Arp(reply) => {
                    arp += 1;
                    send(dev.handle, &reply);
                }
                Answer::Echo { len, quit } => {
                    if send(dev.handle, &got[..len]) {
                        echoed += 1;
                    }
                    if quit {
                        let _ = writeln!(Puts, "hvt_echo: echoed={echoed} arp={arp} end=quit");
                        let _ = writeln!(Puts, "SUCCESS");
                        return 0;
                    }
                }
                Answer::Ignore => {}
            }
        }
    }
}

#[cfg(target_os = "none")]
fn hvt_main(info: &vmm_abi::hvt::BootInfo) -> i32 {
    echo::main(info)
}

/// On the host the image only says what it is (see `hvt_net_entry!`).
#[cfg(not(target_os = "none"))]
fn hvt_main(_: &vmm_abi::hvt::BootInfo) -> i32 {
    0
}
