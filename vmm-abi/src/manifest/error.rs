//! What is wrong with a binary manifest: the field at fault, where it is
//! (the header, a section table entry or a record of any kind) and the problem.

use core::fmt;

/// A manifest field, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The header's magic bytes.
    Magic,
    /// The header's ABI version.
    AbiVersion,
    /// The header's size field, or the total length (bytes no section
    /// claims, a table that does not fit).
    Size,
    /// The number of VMs (a VM section's record count).
    VmCount,
    /// A flags word.
    Flags,
    /// Reserved bytes.
    Reserved,
    /// A VM's name.
    Name,
    /// A VM's image name.
    Image,
    /// A VM's argument string.
    Args,
    /// A VM's memory size.
    Memory,
    /// A VM's core set.
    Cores,
    /// A VM's restart policy.
    Restart,
    /// A VM's restart limit.
    RestartLimit,
    /// The scheduling slice.
    Timeslice,
    /// A VM's virtio-net port count.
    Net,
    /// A VM's virtio-console switch.
    Console,
    /// The entry a VM is a clone of (`entry_len`).
    Entry,
    /// The number of links (a link section's record count).
    LinkCount,
    /// A link's first end.
    LinkA,
    /// A link's second end.
    LinkB,
    /// A link's polling core.
    LinkCore,
    /// A link's hold time.
    LinkHold,
    /// A link's flags.
    LinkFlags,
    /// A link's reserved bytes.
    LinkReserved,
    /// The header's count of section table entries.
    SectionCount,
    /// A section's kind.
    SectionKind,
    /// A section's place in the manifest (its offset and length).
    SectionOffset,
    /// A section's record size.
    SectionRecordSize,
    /// The number of NICs (a NIC section's record count).
    NicCount,
    /// A NIC's name.
    NicName,
    /// A NIC's PCI address.
    NicPci,
    /// A NIC's MAC address.
    NicMac,
    /// A NIC's data mode.
    NicMode,
    /// A NIC's polling core.
    NicCore,
    /// A NIC record's reserved bytes.
    NicReserved,
    /// The number of hooks (a hook section's record count).
    HookCount,
    /// A hook's name.
    HookName,
    /// A hook's kind.
    HookKind,
    /// A hook's attach kind or direction.
    HookAttach,
    /// A hook's target (the link it is attached to).
    HookTarget,
    /// A hook's program: its run of the hook code section, or the program
    /// itself.
    HookCode,
    /// A hook's map table: its run of the hook map section, or a
    /// definition in it.
    HookMaps,
    /// A hook record's reserved bytes.
    HookReserved,
    /// The number of instructions of all hooks (the hook code section's
    /// record count).
    HookCodeCount,
    /// The number of map definitions of all hooks (the hook map section's
    /// record count).
    HookMapCount,
    /// The number of block devices (a block section's record count).
    BlockCount,
    /// A block device's name.
    BlockName,
    /// The VM a block device is attached to.
    BlockVm,
    /// The device name a block device has in its VM's Solo5 manifest.
    BlockDevice,
    /// A block device's block size.
    BlockSize,
    /// A block device's capacity (its image's bytes).
    BlockCapacity,
    /// A block device's flags.
    BlockFlags,
    /// A block record's reserved bytes.
    BlockReserved,
    /// The number of net device names (a net device section's record
    /// count).
    NetDeviceCount,
    /// The VM whose net port a net device record names.
    NetDeviceVm,
    /// The net port a net device record names.
    NetDevicePort,
    /// The device name a net port has in its VM's Solo5 manifest.
    NetDeviceName,
    /// A net device record's reserved bytes.
    NetDeviceReserved,
}

impl Field {
    /// The field's name as the TOML manifest spells it (wire-only fields:
    /// as the layout table in [`crate::manifest`] does).
    pub const fn name(self) -> &'static str {
        match self {
            Field::Magic => "magic",
            Field::AbiVersion => "abi_version",
            Field::Size => "size",
            Field::VmCount => "vm_count",
            Field::Flags => "flags",
            Field::Reserved => "reserved",
            Field::Name => "name",
            Field::Image => "image",
            Field::Args => "args",
            Field::Memory => "memory",
            Field::Cores => "cores",
            Field::Restart => "restart",
            Field::RestartLimit => "restart_limit",
            Field::Timeslice => "timeslice",
            Field::Net => "net",
            Field::Console => "console",
            Field::Entry => "entry_len",
            Field::LinkCount => "link_count",
            Field::LinkA => "a",
            Field::LinkB => "b",
            Field::LinkCore => "core",
            Field::LinkHold => "hold",
            Field::LinkFlags => "flags",
            Field::LinkReserved => "reserved",
            Field::SectionCount => "section_count",
            Field::SectionKind => "kind",
            Field::SectionOffset => "offset",
            Field::SectionRecordSize => "record_size",
            Field::NicCount => "nic_count",
            Field::NicName => "name",
            Field::NicPci => "pci",
            Field::NicMac => "mac",
            Field::NicMode => "mode",
            Field::NicCore => "core",
            Field::NicReserved => "reserved",
            Field::HookCount => "hook_count",
            Field::BlockCount => "block_count",
            Field::BlockName => "name",
            Field::BlockVm => "vm",
            Field::BlockDevice => "device",
            Field::BlockSize => "block_size",
            Field::BlockCapacity => "capacity",
            Field::BlockFlags => "persist",
            Field::BlockReserved => "reserved",
            Field::NetDeviceCount => "net_device_count",
            Field::NetDeviceVm => "vm",
            Field::NetDevicePort => "port",
            Field::NetDeviceName => "device",
            Field::NetDeviceReserved => "reserved",
            Field::HookName => "name",
            Field::HookKind => "kind",
            Field::HookAttach => "attach",
            Field::HookTarget => "attach",
            Field::HookCode => "program",
            Field::HookMaps => "maps",
            Field::HookReserved => "reserved",
            Field::HookCodeCount => "hook_code_count",
            Field::HookMapCount => "hook_map_count",
        }
    }
}

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The value is not what it must be.
    Mismatch {
        /// Value found.
        found: u64,
        /// Value required.
        expected: u64,
    },
    /// The value is outside its range.
    OutOfRange {
        /// Value found.
        found: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// The value must be a multiple of this.
    NotMultiple {
        /// Value found.
        found: u64,
        /// Required divisor.
        of: u64,
    },
    /// The text is empty or holds characters it may not.
    BadText,
    /// The text is longer than its field.
    TooLong {
        /// Longest allowed.
        max: u64,
    },
    /// Another VM (for a NIC's name: another NIC) already has this name.
    Duplicate {
        /// Index of the VM (NIC) that has it first.
        first: u32,
    },
    /// Must be zero and is not.
    NotZero,
    /// The control capability where it cannot be: a second holder (the
    /// first's index), or (`None`) a run that is not a service run.
    Capability {
        /// The VM that holds it first, if any.
        holder: Option<u32>,
    },
    /// The port is already an end of this earlier link.
    PortTaken {
        /// Index of the link that has it first.
        link: u32,
    },
    /// The VM does not have this net port.
    NoPort {
        /// Net ports the VM has.
        ports: u8,
    },
    /// A VM runs on (is pinned only to) a core that polls links or serves
    /// the control channel.
    PollCore {
        /// The core.
        core: u32,
    },
    /// A section of a kind this hypervisor does not know.
    UnknownSection {
        /// The kind found.
        kind: u32,
    },
    /// A second section of a kind that may appear once.
    DuplicateSection {
        /// Index of the section table entry that has it first.
        first: u32,
    },
    /// The section's records are not the size its kind's records are.
    RecordSize {
        /// Bytes per record found.
        found: u32,
        /// Bytes per record of this kind.
        expected: u32,
    },
    /// The section's bytes do not lie within the area after the section
    /// table.
    OutOfBounds {
        /// First byte of the section.
        start: u64,
        /// End of the section (exclusive).
        end: u64,
        /// First byte after the section table.
        min: u64,
        /// Length of the manifest.
        max: u64,
    },
    /// The section shares bytes with an earlier one.
    Overlap {
        /// Index of the earlier section table entry.
        section: u32,
    },
    /// Bytes after the section table that belong to no section.
    Unclaimed {
        /// First such byte.
        start: u64,
        /// End of the run (exclusive).
        end: u64,
    },
    /// Not a PCI address (top byte set, device above 31 or function above
    /// 7) nor [`super::NIC_PCI_AUTO`].
    BadPci {
        /// The value found.
        found: u32,
    },
    /// Another NIC already has this PCI address.
    DuplicatePci {
        /// Index of the NIC that has it first.
        first: u32,
    },
    /// A MAC that is all zero or has the group (multicast) bit set.
    NotUnicast,
    /// A link end's kind byte is neither a VM's port (0) nor a NIC (1).
    EndKind {
        /// The kind found.
        kind: u8,
    },
    /// A link end names a NIC the manifest does not have.
    NoNic {
        /// The NIC index found.
        found: u32,
        /// NICs the manifest has.
        nics: u32,
    },
    /// A NIC link end's port byte is not 0.
    NicPort {
        /// The port found.
        port: u8,
    },
    /// Both ends of a link are NICs.
    NicToNic,
    /// Flag bits this ABI version does not know.
    UnknownFlags {
        /// The unknown bits.
        flags: u32,
    },
    /// The bridge flag on a link with no NIC end.
    BridgeWithoutNic,
    /// A link to a NIC is polled on a core other than the NIC's.
    NicCore {
        /// The NIC's index.
        nic: u32,
        /// The core that polls it.
        core: u32,
    },
    /// This VM port is already attached to the same NIC by an earlier link.
    NicAttached {
        /// Index of that link.
        link: u32,
    },
    /// A hook kind this hypervisor does not run (only packet hooks are
    /// built).
    HookKind {
        /// The kind found.
        kind: u8,
    },
    /// A hook attach kind this hypervisor does not know (1: a link
    /// direction, 2: a VM).
    AttachKind {
        /// The attach kind found.
        kind: u8,
    },
    /// A hook attached where its kind cannot be: packet hooks go on link
    /// directions, restart and exit hooks on VMs.
    AttachMismatch {
        /// The hook kind.
        kind: u8,
        /// The attach kind found.
        attach: u8,
    },
    /// Not a Solo5 device name (`[A-Za-z0-9]{1,67}`).
    DeviceName,
    /// A block size that is not a power of two in 512..=32768.
    BlockSize {
        /// The size found.
        found: u32,
    },
    /// A VM binds the same device name twice.
    DuplicateDevice {
        /// The record (block or net device, as the error's place) that
        /// binds it first.
        first: u32,
    },
    /// A VM's net port already has a device name.
    PortNamed {
        /// The net device record that names it first.
        first: u32,
    },
    /// A VM has more net devices than one VM may have.
    TooManyNetDevices {
        /// Most net devices per VM.
        max: u32,
    },
    /// A net device has the device name one of its VM's disks has.
    BlockDeviceName {
        /// The block record that has the name.
        block: u32,
    },
    /// A hook (or a block device) names a VM the manifest does not have.
    NoVm {
        /// The VM index found.
        found: u32,
        /// VMs the manifest has.
        vms: u32,
    },
    /// A hook names a link the manifest does not have.
    NoLink {
        /// The link index found.
        found: u32,
        /// Links the manifest has.
        links: u32,
    },
    /// A hook on a NIC in owned mode (frames go straight between the NIC
    /// and the guest's memory: there is no copy to judge).
    HookOnOwnedNic {
        /// The NIC.
        nic: u32,
    },
    /// A hook on a link with a NIC end (the NIC's queue is the place).
    HookOnNic {
        /// The link.
        link: u32,
    },
    /// An earlier hook of the same kind is attached to the same link
    /// direction or VM.
    HookAttached {
        /// Index of that hook.
        hook: u32,
    },
    /// A hook's run of a blob section is not where it must be: right after
    /// the previous hook's run, within the section.
    HookSpan {
        /// First record of the run.
        start: u32,
        /// Records in the run.
        count: u32,
        /// Where it must start.
        expected: u32,
        /// Records the section has.
        total: u32,
    },
    /// A hook's map definition breaks a limit.
    BadMap {
        /// Its index in the hook's map table.
        index: u32,
        /// What is wrong.
        error: crate::hook::MapError,
    },
    /// The verifier refused a hook's program.
    Verify {
        /// The hook's name.
        name: super::hook::HookName,
        /// The rule and the instruction.
        error: crate::hook::VerifyError,
    },
}

/// Where in the manifest an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The header (or the manifest as a whole).
    Header,
    /// Entry N of the section table.
    Section(u32),
    /// VM record N.
    Vm(u32),
    /// Link record N.
    Link(u32),
    /// NIC record N.
    Nic(u32),
    /// Hook record N.
    Hook(u32),
    /// Block device record N.
    Block(u32),
    /// Net device record N.
    NetDevice(u32),
}

/// A manifest that cannot be used, and exactly why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Index of the record at fault: of the VM record, of the link record
    /// for the link fields, of the NIC record for the NIC fields, of the
    /// section table entry for the section fields and the record counts;
    /// `None` for the header. See
    /// [`ManifestError::place`].
    pub vm: Option<u32>,
    /// The field at fault.
    pub field: Field,
    /// What is wrong with it.
    pub problem: Problem,
}

impl ManifestError {
    /// Where the error is, from its index and field.
    pub const fn place(&self) -> Place {
        let Some(i) = self.vm else {
            return Place::Header;
        };
        match self.field {
            Field::LinkA
            | Field::LinkB
            | Field::LinkCore
            | Field::LinkHold
            | Field::LinkFlags
            | Field::LinkReserved => Place::Link(i),
            Field::SectionKind
            | Field::SectionOffset
            | Field::SectionRecordSize
            | Field::VmCount
            | Field::LinkCount
            | Field::NicCount => Place::Section(i),
            Field::NicName
            | Field::NicPci
            | Field::NicMac
            | Field::NicMode
            | Field::NicCore
            | Field::NicReserved => Place::Nic(i),
            Field::HookName
            | Field::HookKind
            | Field::HookAttach
            | Field::HookTarget
            | Field::HookCode
            | Field::HookMaps
            | Field::HookReserved => Place::Hook(i),
            Field::HookCount | Field::HookCodeCount | Field::HookMapCount => Place::Section(i),
            Field::BlockCount | Field::NetDeviceCount => Place::Section(i),
            Field::BlockName
            | Field::BlockVm
            | Field::BlockDevice
            | Field::BlockSize
            | Field::BlockCapacity
            | Field::BlockFlags
            | Field::BlockReserved => Place::Block(i),
            Field::NetDeviceVm
            | Field::NetDevicePort
            | Field::NetDeviceName
            | Field::NetDeviceReserved => Place::NetDevice(i),
            _ => Place::Vm(i),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.name();
        if let Problem::Verify { name, error } = self.problem {
            // The verifier's own words, after the hook's name:
            // hook `fw-v6`: insn 7: back edge to insn 3 (loops are not allowed)
            return write!(f, "manifest: hook `{name}`: {error}");
        }
        match self.place() {
            Place::Header => write!(f, "manifest header: field `{field}`: ")?,
            Place::Section(i) => write!(f, "manifest section {i}: field `{field}`: ")?,
            Place::Vm(i) => write!(f, "manifest vm {i}: field `{field}`: ")?,
            Place::Link(i) => write!(f, "manifest link {i}: field `{field}`: ")?,
            Place::Nic(i) => write!(f, "manifest nic {i}: field `{field}`: ")?,
            Place::Hook(i) => write!(f, "manifest hook {i}: field `{field}`: ")?,
            Place::Block(i) => write!(f, "manifest block {i}: field `{field}`: ")?,
            Place::NetDevice(i) => write!(f, "manifest net device {i}: field `{field}`: ")?,
        }
        match self.problem {
            Problem::Duplicate { first } => match self.place() {
                Place::Nic(_) => write!(f, "same name as nic {first}"),
                Place::Hook(_) => write!(f, "same name as hook {first}"),
                Place::Block(_) => write!(f, "same name as block {first}"),
                _ => write!(f, "same name as vm {first}"),
            },
            Problem::DuplicateDevice { first } => match self.place() {
                Place::NetDevice(_) => {
                    write!(f, "the VM already binds this device to net device {first}")
                }
                _ => write!(f, "the VM already binds this device to block {first}"),
            },
            p => write!(f, "{p}"),
        }
    }
}

/// What is wrong, without where (a name clash names the other as a VM;
/// [`ManifestError`] names its kind).
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Mismatch { found, expected } => {
                write!(f, "found {found:#x}, expected {expected:#x}")
            }
            Problem::OutOfRange { found, min, max } => {
                write!(f, "{found} is outside {min}..={max}")
            }
            Problem::NotMultiple { found, of } => write!(f, "{found} is not a multiple of {of}"),
            Problem::BadText => write!(
                f,
                "must be non-empty and use only the allowed characters (names: A-Z a-z 0-9 _ . -, starting with a letter or digit, and not `hv`; args: printable ASCII)"
            ),
            Problem::TooLong { max } => write!(f, "longer than {max} bytes"),
            Problem::Duplicate { first } => write!(f, "same name as vm {first}"),
            Problem::NotZero => write!(f, "must be zero"),
            Problem::Capability {
                holder: Some(first),
            } => {
                write!(f, "the control capability is already held by vm {first}")
            }
            Problem::Capability { holder: None } => {
                write!(f, "the control capability needs a service run")
            }
            Problem::NoPort { ports } => write!(f, "that VM has {ports} net ports"),
            Problem::PortTaken { link } => write!(f, "port is already an end of link {link}"),
            Problem::PollCore { core } => write!(
                f,
                "core {core} polls links or NICs or (in a service run) serves the control channel, so no VM may be pinned only to it"
            ),
            Problem::UnknownSection { kind } => {
                write!(f, "unknown section kind {kind} (this hypervisor knows ")?;
                for (i, k) in super::SectionKind::ALL.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{} = {}", *k as u32, k.name())?;
                }
                f.write_str(")")
            }
            Problem::DuplicateSection { first } => {
                write!(f, "same kind as section {first}; each kind appears once")
            }
            Problem::RecordSize { found, expected } => write!(
                f,
                "records of {found} bytes, but this kind's records are {expected} bytes"
            ),
            Problem::OutOfBounds {
                start,
                end,
                min,
                max,
            } => write!(
                f,
                "bytes {start}..{end} are not within {min}..{max} (after the section table, within the manifest)"
            ),
            Problem::Overlap { section } => write!(f, "shares bytes with section {section}"),
            Problem::Unclaimed { start, end } => {
                write!(f, "bytes {start}..{end} belong to no section")
            }
            Problem::BadPci { found } => write!(
                f,
                "{found:#x} is neither a PCI address (bus << 16 | device << 8 | function, device 0..=31, function 0..=7) nor {:#x} (auto)",
                super::NIC_PCI_AUTO
            ),
            Problem::DuplicatePci { first } => write!(f, "same PCI address as nic {first}"),
            Problem::NotUnicast => write!(
                f,
                "not a unicast MAC (all zero, or the group bit, the low bit of the first byte, set)"
            ),
            Problem::EndKind { kind } => write!(
                f,
                "end kind {kind} is neither 0 (a VM's net port) nor 1 (a NIC)"
            ),
            Problem::NoNic { found, nics } => {
                write!(f, "no nic {found}: the manifest has {nics} NICs")
            }
            Problem::NicPort { port } => {
                write!(
                    f,
                    "a NIC end has no ports, so its port must be 0, not {port}"
                )
            }
            Problem::UnknownFlags { flags } => write!(f, "unknown flag bits {flags:#x}"),
            Problem::BridgeWithoutNic => write!(
                f,
                "`bridge` is only for a link between a VM's net port and a NIC"
            ),
            Problem::NicToNic => write!(
                f,
                "both ends are NICs; a link joins a VM's net port to another or to a NIC"
            ),
            Problem::NicCore { nic, core } => write!(
                f,
                "nic {nic} is polled on core {core}, so every link to it is polled there too"
            ),
            Problem::HookKind { kind } => write!(
                f,
                "hook kind {kind}: not one of packet (1), restart (2), exit (3) and slice (4)"
            ),
            Problem::AttachKind { kind } => write!(
                f,
                "attach kind {kind}: 1 (one direction of a link), 2 (a VM), 3 (one direction of a NIC's queue) and 4 (a core) are built"
            ),
            Problem::AttachMismatch { kind, attach } => write!(
                f,
                "a hook of kind {kind} cannot have attach kind {attach}: packet hooks (1) go on link directions (1) or NIC queues (3), restart (2), exit (3) and slice (4) hooks on VMs (2), slice hooks also on cores (4)"
            ),
            Problem::DeviceName => write!(
                f,
                "not a Solo5 device name (1 to 67 letters and digits, as the unikernel's manifest declares it)"
            ),
            Problem::BlockSize { found } => {
                write!(f, "{found} is not a power of two from 512 to 32768")
            }
            Problem::DuplicateDevice { first } => {
                write!(f, "the VM already binds this device to block {first}")
            }
            Problem::PortNamed { first } => write!(
                f,
                "net device {first} already names this port of the VM; a port has one device name"
            ),
            Problem::TooManyNetDevices { max } => write!(
                f,
                "the VM has {max} net devices already, the most one VM may have"
            ),
            Problem::BlockDeviceName { block } => write!(
                f,
                "the VM binds this device name to block {block} already; a name is one device"
            ),
            Problem::NoVm { found, vms } => {
                write!(f, "no VM {found}: the manifest has {vms} VMs")
            }
            Problem::NoLink { found, links } => {
                write!(f, "no link {found}: the manifest has {links} links")
            }
            Problem::HookOnNic { link } => write!(
                f,
                "link {link} has a NIC end; attach the hook to the NIC's queue instead"
            ),
            Problem::HookOnOwnedNic { nic } => write!(
                f,
                "NIC {nic} is in owned mode: its frames go straight between the NIC and the guest's memory, so there is no copy for a hook to judge; use shared mode"
            ),
            Problem::HookAttached { hook } => {
                write!(f, "hook {hook} of the same kind is attached there already")
            }
            Problem::HookSpan {
                start,
                count,
                expected,
                total,
            } => write!(
                f,
                "records {start}..{} must start at {expected} (where the previous hook's end) and lie within the section's {total}",
                u64::from(start) + u64::from(count)
            ),
            Problem::BadMap { index, error } => write!(f, "map {index}: {error}"),
            Problem::Verify { name, error } => write!(f, "hook `{name}`: {error}"),
            Problem::NicAttached { link } => {
                write!(
                    f,
                    "this port is already attached to that NIC by link {link}"
                )
            }
        }
    }
}
