//! A minimal Solo5 hvt guest runtime, written here from the ABI's facts so Corral's tests have hvt unikernels of their own: the [`hvt_entry!`](crate::hvt_entry) macro (entry point, `ABI1` and `MFT1` notes, optionally one block device), the hypercalls (`puts`, `walltime`, `poll`, `halt`, `block_read`/`block_write`, `net_write`/`net_read`) as 32-bit `out`s to the hvt ports, net I/O through Solo5's shared ring when the monitor offers it, and Solo5-style trap handlers (a CPU exception prints the trap and aborts with the trap frame as the halt cookie).
//!
//! An hvt image links with `hvt.ld` (next to this crate's `Cargo.toml`),
//! which places it at [`vmm_abi::hvt::MIN_LOAD_GPA`] with the two notes
//! in PT_NOTE segments. Nothing here is Corral's own ABI: an image built
//! this way runs under Solo5's `solo5-hvt` tender as well.

use vmm_abi::hvt;

/// An hvt image's main function: gets the boot info, returns the exit
/// status.
pub type Main = fn(&hvt::BootInfo) -> i32;

/// Declares `main` (a [`Main`]) as this hvt image's main function; the
/// manifest declares no devices.
///
/// For the bare-metal target this emits the entry point `hvt_start` and
/// the notes; on the host a `fn main` that says what the image is.
///
/// `hvt_entry!(main, block = "storage")` declares one BLOCK_BASIC device
/// of that name (at most 67 letters and digits) in the manifest.
#[macro_export]
macro_rules! hvt_entry {
    ($main:path) => {
        $crate::hvt_entry!($main, abi_target = 1, abi_version = 2);
    };
    ($main:path, block = $device:literal) => {
        #[cfg(target_os = "none")]
        ::core::arch::global_asm!(
            ".pushsection .note.solo5.abi, \"a\", @note",
            ".p2align 2",
            ".long 6, 16, 0x31494241",
            ".asciz \"Solo5\"",
            ".p2align 2",
            ".long 1, 2, 0, 0",
            ".popsection",
            // The manifest: the reserved first entry, then the block
            // device (name NUL-padded to 68 bytes, type 1, the rest zero).
            ".pushsection .note.solo5.manifest, \"a\", @note",
            ".p2align 3",
            ".long 6, 220, 0x3154464d",
            ".asciz \"Solo5\"",
            ".p2align 2",
            ".long 0",
            ".long 1, 2",
            ".zero 68",
            ".long 0x40000000",
            ".zero 32",
            "1:",
            concat!(".ascii \"", $device, "\""),
            "2:",
            ".zero 68 - (2b - 1b)",
            ".long 1",
            ".zero 32",
            ".popsection",
        );
        $crate::hvt_entry!(@start $main);
    };
    (@start $main:path) => {
        /// Where the hvt monitor starts this image (the one `unsafe` a
        /// well-behaved image has).
        #[cfg(target_os = "none")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn hvt_start(boot_info: u64) -> ! {
            // SAFETY: `hvt_start` is the image's ELF entry point and
            // nothing else calls it: the monitor jumps here once with the
            // boot info's address in RDI.
            unsafe { $crate::hvt::start(boot_info, $main) }
        }

        #[cfg(not(target_os = "none"))]
        fn main() {
            let _: $crate::hvt::Main = $main;
            ::std::eprintln!("this is a Solo5 hvt guest image; build it for x86_64-unknown-none");
            ::std::process::exit($crate::exit_code::HOST_RUN);
        }
    };
    ($main:path, abi_target = $target:literal, abi_version = $version:literal) => {
        #[cfg(target_os = "none")]
        ::core::arch::global_asm!(
            ".pushsection .note.solo5.abi, \"a\", @note",
            ".p2align 2",
            ".long 6, 16, 0x31494241",
            ".asciz \"Solo5\"",
            ".p2align 2",
            concat!(
                ".long ",
                stringify!($target),
                ", ",
                stringify!($version),
                ", 0, 0"
            ),
            ".popsection",
            ".pushsection .note.solo5.manifest, \"a\", @note",
            ".p2align 3",
            ".long 6, 116, 0x3154464d",
            ".asciz \"Solo5\"",
            ".p2align 2",
            ".long 0",
            ".long 1, 1",
            ".zero 68",
            ".long 0x40000000",
            ".zero 32",
            ".popsection",
        );
        $crate::hvt_entry!(@start $main);
    };
}

/// The Solo5 ABI constants [`hvt_net_entry!`] writes into an image's notes,
/// under a path the macro can name from any crate.
#[doc(hidden)]
pub use vmm_abi::hvt as abi;

/// Declares `main` (a [`Main`]) as this hvt image's main function, with
/// one NET_BASIC device per name in the manifest, in order (so their
/// handles are 1, 2, ...): `hvt_net_entry!(main, net = ["service0",
/// "service1"])`. Names are 1 to 67 letters and digits.
///
/// Like [`hvt_entry!`](crate::hvt_entry) it emits the entry point and the
/// `ABI1` note (hvt target, version [`vmm_abi::hvt::ABI_VERSION`]); the
/// `MFT1` note's sizes and entry count are worked out by the assembler
/// from the entries it lays out.
#[macro_export]
macro_rules! hvt_net_entry {
    ($main:path, net = [$($device:literal),+ $(,)?]) => {
        #[cfg(target_os = "none")]
        ::core::arch::global_asm!(
            ".pushsection .note.solo5.abi, \"a\", @note",
            ".p2align 2",
            ".long {namesz}, {abi1_size}, {abi1}",
            ".asciz \"Solo5\"",
            ".p2align 2",
            ".long {target}, {version}, 0, 0",
            ".popsection",
            // The manifest: its size from labels 1 (after the owner name)
            // and 3 (the end), its entry count from the entries' bytes
            // (labels 2 to 3): the reserved first entry, then one
            // NET_BASIC entry per name (name NUL-padded, then the type;
            // the union, `attached` and padding zero).
            ".pushsection .note.solo5.manifest, \"a\", @note",
            ".p2align 3",
            ".long {namesz}, 3f - 1f, {mft1}",
            ".asciz \"Solo5\"",
            ".p2align 2",
            "1:",
            ".zero {pad}",
            ".long {mft_version}, (3f - 2f) / {entry}",
            "2:",
            ".zero {name}",
            ".long {reserved}",
            ".zero {tail}",
            $(
                "4:",
                concat!(".ascii \"", $device, "\""),
                "5:",
                ".zero {name} - (5b - 4b)",
                ".long {net}",
                ".zero {tail}",
            )+
            "3:",
            ".popsection",
            namesz = const $crate::hvt::abi::NOTE_OWNER.len(),
            abi1_size = const $crate::hvt::abi::ABI1_SIZE,
            abi1 = const $crate::hvt::abi::NOTE_ABI1,
            target = const $crate::hvt::abi::ABI_TARGET_HVT,
            version = const $crate::hvt::abi::ABI_VERSION,
            mft1 = const $crate::hvt::abi::NOTE_MFT1,
            pad = const $crate::hvt::abi::MFT1_PAD,
            mft_version = const $crate::hvt::abi::MFT_VERSION,
            entry = const $crate::hvt::abi::MFT_ENTRY_SIZE,
            name = const $crate::hvt::abi::MFT_NAME_SIZE,
            tail = const $crate::hvt::abi::MFT_ENTRY_SIZE - $crate::hvt::abi::MFT_UNION,
            reserved = const $crate::hvt::abi::MFT_RESERVED_FIRST,
            net = const $crate::hvt::abi::MFT_DEV_NET_BASIC,
        );
        $crate::hvt_entry!(@start $main);
    };
}

#[cfg(target_os = "none")]
pub use bare_metal::*;

#[cfg(target_os = "none")]
mod bare_metal {
    use super::Main;
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering, fence};
    use vmm_abi::hvt;

    /// Runs the image: the body of the `hvt_start` that
    /// [`hvt_entry!`](crate::hvt_entry) emits.
    ///
    /// # Safety
    /// Call once, as the entry point, with the boot info's address from
    /// RDI.
    pub unsafe fn start(boot_info: u64, main: Main) -> ! {
        // TLS base 0, as Solo5's bindings set it: stray TLS accesses hit the
        // unmapped null page.
        set_tls_base(0);
        let mut raw = [0u8; hvt::BOOT_INFO_SIZE as usize];
        // SAFETY: the monitor placed the boot info at `boot_info`, mapped
        // read-only for the whole run; this copies it out.
        unsafe {
            core::ptr::copy_nonoverlapping(boot_info as *const u8, raw.as_mut_ptr(), raw.len())
        };
        let info = hvt::BootInfo::from_bytes(&raw);
        if info.host_features & hvt::FEATURE_RING_IO != 0 && info.net_ring != 0 {
            RING.store(info.net_ring, Ordering::Relaxed);
        }
        halt(main(&info))
    }

    /// The shared net ring the monitor offered (0: none, or not used):
    /// `net_write` and `net_read` go through it, as Solo5's bindings do.
    static RING: AtomicU64 = AtomicU64::new(0);
    /// Longest frame a Corral hvt net device carries: MTU 1500 and the
    /// 14-byte Ethernet header.
    const FRAME_MAX: u64 = 1514;
    /// Slots of the ring this guest keeps in flight (it keeps one write
    /// buffer per slot; Solo5's bindings keep one per ring entry).
    const RING_SLOTS: u32 = 64;
    /// The write buffers, by slot.
    static mut WRITE_BUFS: [[u8; hvt::RING_BUF_SIZE as usize]; RING_SLOTS as usize] =
        [[0; hvt::RING_BUF_SIZE as usize]; RING_SLOTS as usize];

    /// Whether `net_write` and `net_read` use the shared ring.
    pub fn ring_in_use() -> bool {
        RING.load(Ordering::Relaxed) != 0
    }

    /// Makes `net_write` and `net_read` use the hypercalls even though a
    /// shared ring was offered (as Solo5 guests built before the ring
    /// existed do).
    pub fn use_hypercalls() {
        RING.store(0, Ordering::Relaxed);
    }

    /// The ring's u32 at `off`.
    fn ring_word(ring: u64, off: u64) -> *mut u32 {
        (ring + off) as *mut u32
    }

    fn load(ring: u64, off: u64) -> u32 {
        // SAFETY: the ring lies in this guest's memory, mapped writable for
        // the whole run (the monitor placed it below the stack top and
        // above the image); `off` is one of its u32 fields, aligned.
        unsafe { ring_word(ring, off).read_volatile() }
    }

    fn store(ring: u64, off: u64, v: u32) {
        // SAFETY: as in `load`; only this guest writes its half of the ring.
        unsafe { ring_word(ring, off).write_volatile(v) }
    }

    /// Waits while [`RING_SLOTS`] requests are in flight; the tail, where
    /// the next request goes.
    fn ring_tail(ring: u64) -> u32 {
        let tail = load(ring, hvt::RING_ENT_TAIL);
        while tail.wrapping_sub(load(ring, hvt::RING_ENT_HEAD)) >= RING_SLOTS {
            core::hint::spin_loop();
        }
        tail
    }

    /// Writes one request at `tail` (from [`ring_tail`]) and publishes it.
    fn ring_submit(ring: u64, tail: u32, op: u32, handle: u64, data: u64, len: u64) {
        let e = ring + hvt::RING_ENTRIES + u64::from(tail % hvt::RING_SIZE) * hvt::RING_ENTRY_SIZE;
        let id = tail;
        // SAFETY: entry `tail` is the guest's to write until it moves the
        // tail past it (the host reads entries below the tail only).
        unsafe {
            (e as *mut u32).write_volatile(op);
            ((e + hvt::RING_ENTRY_HANDLE) as *mut u32).write_volatile(handle as u32);
            ((e + hvt::RING_ENTRY_DATA) as *mut u64).write_volatile(data);
            ((e + hvt::RING_ENTRY_LEN) as *mut u32).write_volatile(len as u32);
            ((e + hvt::RING_ENTRY_ID) as *mut u32).write_volatile(id);
        }
        // The entry is whole before the tail moves past it.
        fence(Ordering::Release);
        store(ring, hvt::RING_ENT_TAIL, tail.wrapping_add(1));
        // The tail is visible before `needs_kick` is read (store-load).
        fence(Ordering::SeqCst);
        if load(ring, hvt::RING_NEEDS_KICK) != 0 {
            out_port(hvt::RING_KICK_PORT, 0);
        }
    }

    /// Queues a `net_write` request of `len` bytes at `data` in the shared
    /// ring, whatever they are; false without a ring. Tests use it to
    /// make requests a well-behaved guest never makes.
    pub fn ring_write_raw(handle: u64, data: u64, len: u64) -> bool {
        let ring = RING.load(Ordering::Relaxed);
        if ring != 0 {
            ring_submit(
                ring,
                ring_tail(ring),
                hvt::RING_OP_NET_WRITE,
                handle,
                data,
                len,
            );
        }
        ring != 0
    }

    /// Sends `frame` through the ring (it is copied into the slot's
    /// buffer first, so the caller may reuse it at once).
    fn ring_write(ring: u64, handle: u64, frame: &[u8]) -> i32 {
        let tail = ring_tail(ring);
        let slot = (tail % RING_SLOTS) as usize;
        // SAFETY: slot `tail % RING_SLOTS` was last used by request
        // `tail - RING_SLOTS`, which the host has consumed (the head is
        // past it), so nobody reads the buffer; one core.
        let buf = unsafe {
            &mut *(&raw mut WRITE_BUFS)
                .cast::<[u8; hvt::RING_BUF_SIZE as usize]>()
                .add(slot)
        };
        buf[..frame.len()].copy_from_slice(frame);
        let data = buf.as_ptr() as u64;
        ring_submit(
            ring,
            tail,
            hvt::RING_OP_NET_WRITE,
            handle,
            data,
            frame.len() as u64,
        );
        hvt::R_OK
    }

    /// Receives into `buf` through the ring: submits the read and waits
    /// for its commit; (len, ret).
    fn ring_read(ring: u64, handle: u64, buf: &mut [u8]) -> (u64, i32) {
        let data = buf.as_mut_ptr() as u64;
        ring_submit(
            ring,
            ring_tail(ring),
            hvt::RING_OP_NET_READ,
            handle,
            data,
            buf.len() as u64,
        );
        let head = load(ring, hvt::RING_COM_HEAD);
        while load(ring, hvt::RING_COM_TAIL) == head {
            core::hint::spin_loop();
        }
        // The commit is read after its index.
        fence(Ordering::Acquire);
        let c = hvt::RING_COMMITS + u64::from(head % hvt::RING_SIZE) * hvt::RING_COMMIT_SIZE;
        let ret = load(ring, c + hvt::RING_COMMIT_RET) as i32;
        let len = load(ring, c + hvt::RING_COMMIT_LEN);
        store(ring, hvt::RING_COM_HEAD, head.wrapping_add(1));
        (u64::from(len), ret)
    }

    /// One hypercall: `out` to port `base + nr` with EAX = the argument
    /// struct's address (below 4 GiB: images and their stacks are).
    fn hypercall(nr: u16, arg: *mut u8) {
        let port = hvt::HYPERCALL_PIO_BASE + nr;
        // SAFETY: the monitor reads (and for some calls writes) only the
        // argument struct `arg` points at, which the caller owns for the
        // call; the default memory clobber makes the writes visible. The
        // instruction touches no stack and no other register.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") arg as u64 as u32, options(nostack));
        }
    }

    /// Writes `bytes` to the console.
    pub fn puts(bytes: &[u8]) {
        let mut arg = [0u64; 2];
        arg[0] = bytes.as_ptr() as u64;
        arg[1] = bytes.len() as u64;
        hypercall(hvt::HC_PUTS, arg.as_mut_ptr().cast());
    }

    /// Nanoseconds since the Unix epoch.
    pub fn walltime() -> u64 {
        let mut arg = [0u64; 1];
        hypercall(hvt::HC_WALLTIME, arg.as_mut_ptr().cast());
        arg[0]
    }

    /// The console as a [`core::fmt::Write`]: `write!(Puts, ...)` prints
    /// through `puts`.
    pub struct Puts;

    impl core::fmt::Write for Puts {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            puts(s.as_bytes());
            Ok(())
        }
    }

    /// Waits for a device or `timeout_ns`; returns the ready set.
    pub fn poll(timeout_ns: u64) -> u64 {
        let mut arg = [0u64; 3];
        arg[0] = timeout_ns;
        hypercall(hvt::HC_POLL, arg.as_mut_ptr().cast());
        arg[1]
    }

    /// Ends the guest with `status` (255: abort).
    pub fn halt(status: i32) -> ! {
        halt_with_cookie(status, 0)
    }

    /// Ends the guest with `status` and `cookie`: the address of up to
    /// [`hvt::HALT_COOKIE_MAX`] bytes the monitor may read (a trap frame),
    /// or 0.
    fn halt_with_cookie(status: i32, cookie: u64) -> ! {
        let mut arg = [0u64; 2];
        arg[0] = cookie;
        arg[1] = u64::from(status as u32);
        hypercall(hvt::HC_HALT, arg.as_mut_ptr().cast());
        loop {
            core::hint::spin_loop();
        }
    }

    /// CPU exceptions handled (vectors 0..32).
    const VECTORS: usize = 32;
    /// The hvt GDT's code segment selector (entry 1).
    const CODE_SELECTOR: u64 = 0x08;
    /// A present 64-bit interrupt gate, ring 0.
    const INTERRUPT_GATE: u64 = 0x8E;
    /// Exception mnemonics by vector.
    const NAMES: [&str; VECTORS] = [
        "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF",
        "15", "MF", "AC", "MC", "XM", "VE", "CP", "22", "23", "24", "25", "26", "27", "HV", "VC",
        "SX", "31",
    ];

    /// The trap frame a trap hands the monitor in the halt cookie, as
    /// Solo5's bindings lay it out (in the first [`hvt::HALT_COOKIE_MAX`]
    /// bytes).
    #[repr(C, align(64))]
    struct TrapFrame {
        cr2: u64,
        ec: u64,
        rip: u64,
        cs: u64,
        rflags: u64,
        rsp: u64,
        ss: u64,
        _pad: [u64; 57],
    }

    /// The one trap frame (a trap ends the guest).
    static mut TRAP_FRAME: TrapFrame = TrapFrame {
        cr2: 0,
        ec: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
        _pad: [0; 57],
    };

    /// The interrupt descriptor table (two words per gate).
    static mut IDT: [u64; 2 * VECTORS] = [0; 2 * VECTORS];

    /// A copy of the hvt GDT in this image's memory: the monitor's, at
    /// `GDT_GPA`, lies in the low pages the guest's tables leave unmapped,
    /// so the CPU could not read it to deliver an exception (Solo5's
    /// bindings load their own too).
    static GDT: [u64; 3] = hvt::GDT;

    // One stub per vector: vectors without an error code push 0 in its
    // place (the CPU pushes one for 8, 10-14, 17, 21, 29 and 30; SDM Vol.
    // 3A, 6.13), then every stub pushes its vector and goes to the common
    // part, which passes the frame to `hvt_trap`.
    core::arch::global_asm!(
        ".pushsection .text.hvt_traps, \"ax\"",
        ".altmacro",
        ".macro hvt_stub n, ec",
        "hvt_trap_\\n:",
        ".if \\ec == 0",
        "push 0",
        ".endif",
        "push \\n",
        "jmp hvt_trap_common",
        ".endm",
        "hvt_trap_common:",
        "cld",
        "mov rdi, rsp",
        "and rsp, -16",
        "call hvt_trap",
        "ud2",
        ".irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
        "hvt_stub \\n, 0",
        ".endr",
        ".irp n, 8,10,11,12,13,14,17,21,29,30",
        "hvt_stub \\n, 1",
        ".endr",
        ".popsection",
        ".pushsection .rodata.hvt_traps, \"a\"",
        ".p2align 3",
        "hvt_trap_stubs:",
        ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
        ".quad hvt_trap_\\n",
        ".endr",
        ".popsection",
        ".noaltmacro",
    );

    unsafe extern "C" {
        /// The stubs' addresses, by vector (defined above).
        static hvt_trap_stubs: [u64; VECTORS];
    }

    /// Installs the exception handlers Solo5's bindings install: a CPU
    /// exception prints `Solo5: trap: ...` and `Solo5: ABORT: ...` and
    /// halts with 255, the trap frame as the halt cookie.
    pub fn install_trap_handlers() {
        // SAFETY: the table of the stubs' addresses is read-only data this
        // image defines (never written).
        let stubs = unsafe { &hvt_trap_stubs };
        for (v, &stub) in stubs.iter().enumerate() {
            let low = (stub & 0xffff)
                | (CODE_SELECTOR << 16)
                | (INTERRUPT_GATE << 40)
                | ((stub >> 16) & 0xffff) << 48;
            // SAFETY: one core, before any exception can use the table;
            // nothing else refers to it.
            unsafe {
                let idt = &raw mut IDT;
                (*idt)[2 * v] = low;
                (*idt)[2 * v + 1] = stub >> 32;
            }
        }
        let mut gdt = [0u8; 10];
        gdt[..2].copy_from_slice(&hvt::GDT_LIMIT.to_le_bytes());
        gdt[2..].copy_from_slice(&(GDT.as_ptr() as u64).to_le_bytes());
        let mut idt = [0u8; 10];
        idt[..2].copy_from_slice(&((2 * VECTORS * 8 - 1) as u16).to_le_bytes());
        idt[2..].copy_from_slice(&(&raw const IDT as u64).to_le_bytes());
        // SAFETY: the GDT copy holds the same descriptors the loaded
        // selectors came from (their cached parts do not change), and the
        // IDT holds a gate for every exception vector; both live for the
        // whole run.
        unsafe {
            asm!(
                "lgdt [{}]",
                "lidt [{}]",
                in(reg) gdt.as_ptr(),
                in(reg) idt.as_ptr(),
                options(nostack, readonly)
            )
        };
    }

    /// Writes `v` in hex (`0x...`).
    fn put_hex(v: u64) {
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        for (i, b) in buf[2..].iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
        puts(&buf);
    }

    /// Where every exception ends: `frame` points at the vector, the error
    /// code, then what the CPU pushed (RIP, CS, RFLAGS, RSP, SS).
    #[unsafe(no_mangle)]
    extern "C" fn hvt_trap(frame: *const u64) -> ! {
        let mut w = [0u64; 7];
        for (i, x) in w.iter_mut().enumerate() {
            // SAFETY: the stub built seven words at `frame` on this stack.
            *x = unsafe { frame.add(i).read() };
        }
        let cr2: u64;
        // SAFETY: reads CR2 only.
        unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nostack, nomem)) };
        let [vector, ec, rip, cs, rflags, rsp, ss] = w;
        // SAFETY: a trap ends the guest: this is the only write of the frame,
        // and nothing reads it but the monitor, after the halt.
        unsafe {
            (&raw mut TRAP_FRAME).write(TrapFrame {
                cr2,
                ec,
                rip,
                cs,
                rflags,
                rsp,
                ss,
                _pad: [0; 57],
            })
        };
        puts(b"Solo5: trap: type=#");
        puts(NAMES.get(vector as usize).unwrap_or(&"?").as_bytes());
        for (label, v) in [
            (" ec=", ec),
            (" rip=", rip),
            (" rsp=", rsp),
            (" rflags=", rflags),
        ] {
            puts(label.as_bytes());
            put_hex(v);
        }
        puts(b"\nSolo5: trap: cr2=");
        put_hex(cr2);
        puts(b"\nSolo5: ABORT: unhandled trap\n");
        halt_with_cookie(hvt::EXIT_ABORT, &raw const TRAP_FRAME as u64)
    }

    /// A block device the monitor attached, from the manifest copy the
    /// boot info points at.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BlockDevice {
        /// Its handle (its index in the manifest).
        pub handle: u64,
        /// Bytes.
        pub capacity: u64,
        /// Bytes per block.
        pub block_size: u64,
    }

    /// The attached BLOCK_BASIC device named `name`, if the manifest copy
    /// (in the read-only boot data) has one.
    pub fn block_device(info: &hvt::BootInfo, name: &str) -> Option<BlockDevice> {
        let (handle, e) = attached_entry(info, name, hvt::MFT_DEV_BLOCK_BASIC)?;
        let at = hvt::MFT_BLOCK_CAPACITY;
        let capacity = u64::from_le_bytes(e.get(at..at + 8)?.try_into().ok()?);
        let at = hvt::MFT_BLOCK_SIZE;
        let block_size = u16::from_le_bytes(e.get(at..at + 2)?.try_into().ok()?);
        Some(BlockDevice {
            handle,
            capacity,
            block_size: block_size.into(),
        })
    }

    /// One block call as the ABI has it: `len` bytes at guest address
    /// `data`, whatever they are (the tests send bad ones on purpose);
    /// returns `ret`.
    pub fn block_call(write: bool, handle: u64, offset: u64, data: u64, len: u64) -> i32 {
        let mut arg = [handle, offset, data, len, 0];
        let nr = if write {
            hvt::HC_BLOCK_WRITE
        } else {
            hvt::HC_BLOCK_READ
        };
        hypercall(nr, arg.as_mut_ptr().cast());
        arg[4] as u32 as i32
    }

    /// Writes `data` at `offset` of block device `handle`; `ret`.
    pub fn block_write(handle: u64, offset: u64, data: &[u8]) -> i32 {
        block_call(
            true,
            handle,
            offset,
            data.as_ptr() as u64,
            data.len() as u64,
        )
    }

    /// Reads `buf.len()` bytes at `offset` of block device `handle` into
    /// `buf`; `ret`.
    pub fn block_read(handle: u64, offset: u64, buf: &mut [u8]) -> i32 {
        block_call(
            false,
            handle,
            offset,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
        )
    }

    /// `struct hvt_hc_net_write` and `struct hvt_hc_net_read` as 64-bit
    /// words: `handle`, `data`, `len` (a read's buffer size in, the bytes
    /// read out), `ret` (i32, then padding).
    const NET_CALL_WORDS: usize = (hvt::NET_SIZE / 8) as usize;
    /// Word of a net call's `len`.
    const NET_LEN: usize = (hvt::NET_LEN / 8) as usize;
    /// Word of a net call's `ret`.
    const NET_RET: usize = (hvt::NET_RET / 8) as usize;

    /// A network device the monitor attached, from the manifest copy the
    /// boot info points at.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NetDevice {
        /// Its handle (its index in the manifest).
        pub handle: u64,
        /// Its MAC address.
        pub mac: [u8; hvt::MAC_LEN],
        /// The largest payload a frame carries (the frame is at most this
        /// plus the 14-byte Ethernet header).
        pub mtu: u16,
    }

    /// The handle and bytes of the attached device of type `kind` named
    /// `name`, if the manifest copy (in the read-only boot data) has one.
    fn attached_entry(info: &hvt::BootInfo, name: &str, kind: u32) -> Option<(u64, &'static [u8])> {
        let start = info.mft;
        if !(hvt::LOW_UNMAPPED_END..hvt::LOW_READ_ONLY_END).contains(&start) {
            return None;
        }
        let max = (hvt::LOW_READ_ONLY_END - start) as usize;
        // SAFETY: the range lies in the boot data the monitor mapped
        // read-only for the whole run (checked above); it never changes.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(start as *const u8, max) };
        let u32_at = |b: &[u8], at: usize| {
            let end = at + core::mem::size_of::<u32>();
            Some(u32::from_le_bytes(b.get(at..end)?.try_into().ok()?))
        };
        let entries = u32_at(bytes, 4)? as usize;
        (1..entries).find_map(|i| {
            let e = bytes.get(hvt::MFT_HEADER + i * hvt::MFT_ENTRY_SIZE..)?;
            let e = e.get(..hvt::MFT_ENTRY_SIZE)?;
            let len = e[..hvt::MFT_NAME_SIZE].iter().position(|&b| b == 0)?;
            (&e[..len] == name.as_bytes()
                && u32_at(e, hvt::MFT_TYPE)? == kind
                && e[hvt::MFT_ATTACHED] != 0)
                .then_some((i as u64, e))
        })
    }

    /// The attached NET_BASIC device named `name`, if the manifest copy
    /// has one.
    pub fn net_device(info: &hvt::BootInfo, name: &str) -> Option<NetDevice> {
        let (handle, e) = attached_entry(info, name, hvt::MFT_DEV_NET_BASIC)?;
        let mac = e
            .get(hvt::MFT_NET_MAC..hvt::MFT_NET_MAC + hvt::MAC_LEN)?
            .try_into()
            .ok()?;
        let mtu_end = hvt::MFT_NET_MTU + core::mem::size_of::<u16>();
        let mtu = u16::from_le_bytes(e.get(hvt::MFT_NET_MTU..mtu_end)?.try_into().ok()?);
        Some(NetDevice { handle, mac, mtu })
    }

    /// A net call as the guest makes it: `net_write` (`write`) or
    /// `net_read` of `len` bytes at `data` on device `handle`, whatever
    /// they are; returns (`len` as the monitor left it, `ret`). Tests use it
    /// to make calls a well-behaved guest never makes.
    pub fn net_call(write: bool, handle: u64, data: u64, len: u64) -> (u64, i32) {
        let mut arg = [0u64; NET_CALL_WORDS];
        arg[0] = handle;
        arg[1] = data;
        arg[NET_LEN] = len;
        let call = if write {
            hvt::HC_NET_WRITE
        } else {
            hvt::HC_NET_READ
        };
        hypercall(call, arg.as_mut_ptr().cast());
        (arg[NET_LEN], arg[NET_RET] as u32 as i32)
    }

    /// Sends `frame` (an Ethernet frame, no other header) on net device
    /// `handle`; returns `ret` (Corral's monitor waits for room rather than
    /// answer [`hvt::R_AGAIN`], as Solo5's tender does).
    pub fn net_write(handle: u64, frame: &[u8]) -> i32 {
        // Frames longer than a device carries (MTU 1500 and the Ethernet
        // header) go by hypercall, which refuses them with EINVAL: a ring
        // write has no answer to give.
        let ring = RING.load(Ordering::Relaxed);
        if ring != 0 && frame.len() as u64 <= FRAME_MAX {
            return ring_write(ring, handle, frame);
        }
        net_call(true, handle, frame.as_ptr() as u64, frame.len() as u64).1
    }

    /// Takes the next frame waiting on net device `handle` into `buf`:
    /// `Ok(length)`, or `Err(ret)` ([`hvt::R_AGAIN`]: none waiting). A
    /// length beyond `buf` (which a correct monitor never answers) is
    /// `Err(`[`hvt::R_EUNSPEC`]`)`.
    pub fn net_read(handle: u64, buf: &mut [u8]) -> Result<usize, i32> {
        let ring = RING.load(Ordering::Relaxed);
        let done = if ring != 0 {
            ring_read(ring, handle, buf)
        } else {
            net_call(false, handle, buf.as_mut_ptr() as u64, buf.len() as u64)
        };
        match done {
            (len, hvt::R_OK) => usize::try_from(len)
                .ok()
                .filter(|&len| len <= buf.len())
                .ok_or(hvt::R_EUNSPEC),
            (_, ret) => Err(ret),
        }
    }

    /// Sets the TLS base (FS_BASE), as every hvt guest does at start.
    pub fn set_tls_base(base: u64) {
        // SAFETY: writing FS_BASE changes only what `fs:`-relative accesses
        // address; this runtime makes none.
        unsafe {
            asm!(
                "wrmsr",
                in("ecx") hvt::MSR_FS_BASE,
                in("eax") base as u32,
                in("edx") (base >> 32) as u32,
                options(nostack, nomem),
            );
        }
    }

    /// Reads the 8 bytes at `fs:0` (the TLS base set by [`set_tls_base`]).
    pub fn read_fs0() -> u64 {
        let v: u64;
        // SAFETY: reads 8 bytes at the TLS base this guest set itself to a
        // buffer it owns (the caller's contract); writes only `v`.
        unsafe { asm!("mov {}, qword ptr fs:[0]", out(reg) v, options(nostack, readonly)) };
        v
    }

    /// Reads the time-stamp counter.
    pub fn rdtsc() -> u64 {
        crate::arch::rdtsc()
    }

    /// The command line the boot info points at (empty if it is not a
    /// NUL-terminated UTF-8 string in the first MiB).
    pub fn cmdline(info: &hvt::BootInfo) -> &'static str {
        let start = info.cmdline;
        if !(hvt::LOW_UNMAPPED_END..hvt::LOW_READ_ONLY_END).contains(&start) {
            return "";
        }
        let max = (hvt::LOW_READ_ONLY_END - start).min(hvt::CMDLINE_SIZE) as usize;
        // SAFETY: the range lies in the boot data the monitor mapped
        // read-only for the whole run (checked above); it never changes.
        let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, max) };
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(&bytes[..len]).unwrap_or("")
    }

    /// Writes one byte at `addr` (for the test that a guest fault ends the
    /// guest by name).
    pub fn poke(addr: u64) {
        // SAFETY: deliberately unsound for the guest: used only to make it
        // fault; the hypervisor's isolation is what is tested.
        unsafe { core::ptr::write_volatile(addr as *mut u8, 1) }
    }

    /// Sends one out of range port access (for the test that a port
    /// outside the hypercalls stops the guest by name).
    pub fn out_port(port: u16, value: u32) {
        // SAFETY: a port write has no effect on this guest's memory or
        // registers; the monitor decides what it means.
        unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, nomem)) }
    }
}
