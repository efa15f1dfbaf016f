//! The block device against a mock driver and a disk in a test buffer: configuration space and features, reads and writes however the chain splits them, flush, ID, unsupported types, refusals with nothing moved, rule-breaking chains named, and a property test over arbitrary chains against a model of the rules.

use super::*;
use crate::block::map_words;
use crate::devices::virtio::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1};
use crate::devices::virtio::mmio::{
    CONFIG_OFFSET, MmioError, Transport, TransportConfig, WriteEffect,
};
use crate::devices::virtio::queue::{
    QueueError, QueueLimits, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
use crate::devices::virtio::testing::{DriverQueue, MEM_SIZE, MmioDriver};
use crate::mem::guest::GuestMemory;
use crate::mem::raw::RawRam;
use crate::mem::raw::testing::over_vec;
use proptest::prelude::*;
use vmm_abi::report::BlockFlow;

/// Descriptors in the test queue.
const QSIZE: u16 = 8;
/// Where the test queue's rings start.
const RING_BASE: u64 = 0x100;
/// Buffers the tests use.
const HDR: u64 = 0x1000;
const STATUS: u64 = 0x1800;
const DATA: u64 = 0x2000;
const DATA2: u64 = 0x6000;
/// Fill of the guest's buffers before a request, to see what was written.
const UNTOUCHED: u8 = 0xee;
/// The ID the tests' devices have.
const NAME: &str = "disk0";

/// A guest with a block queue, and a disk of `blocks` blocks whose byte
/// `i` is `i % 251` (so every block differs).
struct Rig<'a> {
    m: GuestMemory<'a>,
    dq: DriverQueue,
    q: SplitQueue,
    disk: Disk<'a, RawRam>,
    id: [u8; VIRTIO_BLK_ID_BYTES],
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn rig<R>(blocks: u64, bs: u32, f: impl FnOnce(&mut Rig<'_>) -> R) -> R {
    let cap = blocks * u64::from(bs);
    let mut guest = vec![0u8; MEM_SIZE];
    let mut img = pattern(cap);
    let mut map = vec![0u64; map_words(cap, bs) as usize];
    let disk = Disk::new(over_vec(&mut img), cap, bs, &mut map).unwrap();
    let dq = DriverQueue::new(QSIZE, RING_BASE);
    let q = SplitQueue::new(dq.layout(), false, QueueLimits::default()).unwrap();
    let mut r = Rig {
        m: GuestMemory::new(&mut guest),
        dq,
        q,
        disk,
        id: *BlkDevice::new(cap, bs, NAME).id(),
    };
    f(&mut r)
}

/// A request header.
fn header(kind: u32, sector: u64) -> [u8; REQ_HEADER_LEN as usize] {
    let mut h = [0; REQ_HEADER_LEN as usize];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[4..8].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    h
}

/// A buffer of a chain: address, length, device-writable.
type Buf = (u64, u32, bool);

impl Rig<'_> {
    /// Lays `bufs` out as one chain in descriptors 0.. and publishes it.
    fn chain(&mut self, bufs: &[Buf]) {
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let i = i as u16;
            let last = usize::from(i) + 1 == bufs.len();
            let flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 }
                | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            self.dq.set_desc(&mut self.m, i, addr, len, flags, i + 1);
        }
        self.dq.publish(&mut self.m, 0);
    }

    fn serve(&mut self) -> Result<Served, BlkError> {
        serve(&mut self.q, &mut self.m, &mut self.disk, &self.id)
    }

    fn put(&mut self, gpa: u64, bytes: &[u8]) {
        self.m.write(gpa, bytes).unwrap();
    }

    fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.m.read(gpa, &mut v).unwrap();
        v
    }

    fn image(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.disk
            .read_out(0, self.disk.capacity(), 512, |_, b| v.extend_from_slice(b));
        v
    }

    /// The newest used element as (id, len).
    fn last_used(&self) -> (u32, u32) {
        let idx = self.dq.used_idx(&self.m);
        self.dq.used_elem(&self.m, idx.wrapping_sub(1) % QSIZE)
    }

    /// A request with a header, one data buffer and a status byte apart;
    /// its status.
    fn simple(&mut self, kind: u32, sector: u64, data: u64, len: u32, writable: bool) -> u8 {
        self.put(HDR, &header(kind, sector));
        self.put(STATUS, &[UNTOUCHED]);
        self.chain(&[
            (HDR, REQ_HEADER_LEN, false),
            (data, len, writable),
            (STATUS, 1, true),
        ]);
        self.serve().unwrap();
        self.get(STATUS, 1)[0]
    }
}

#[test]
fn config_space_and_features() {
    let dev = BlkDevice::new(8 * 4096, 4096, NAME);
    assert_eq!(dev.device_id(), VIRTIO_ID_BLOCK);
    assert_eq!(dev.num_queues(), 1);
    assert_eq!(
        dev.features(),
        COMMON_FEATURES | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
    );
    assert_eq!(dev.features() & (1 << 6 | 1 << 9), 1 << 6 | 1 << 9);
    assert_eq!(dev.config_len(), 24);
    let mut all = [0xffu8; 32];
    dev.read_config(0, &mut all);
    assert_eq!(
        all[..8],
        64u64.to_le_bytes(),
        "capacity in 512-byte sectors"
    );
    assert_eq!(all[8..20], [0; 12], "size_max, seg_max, geometry");
    assert_eq!(all[20..24], 4096u32.to_le_bytes(), "blk_size");
    assert_eq!(all[24..], [0; 8], "past the end");
    let mut two = [0xff; 2];
    dev.read_config(21, &mut two);
    assert_eq!(two, [0x10, 0]);
    dev.read_config(100, &mut two);
    assert_eq!(two, [0, 0]);
    let mut d = dev;
    d.write_config(0, &[1, 2, 3, 4]);
    assert_eq!(d, dev, "writes are dropped");

    assert_eq!(dev.id(), b"disk0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let long = BlkDevice::new(512, 512, "a-name-of-more-than-twenty-bytes");
    assert_eq!(long.id(), b"a-name-of-more-than-");

    // Through the transport, as a driver reads it.
    let mut t = Transport::new(dev, TransportConfig::new(MEM_SIZE as u64));
    let mut drv = MmioDriver::default();
    let want = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
    assert_eq!(drv.begin_init(&mut t, u64::MAX), Ok(want));
    assert_eq!(drv.offered, want);
    assert_eq!(t.read(CONFIG_OFFSET, 4), Ok(64));
    assert_eq!(t.read(CONFIG_OFFSET + 4, 4), Ok(0));
    assert_eq!(t.read(CONFIG_OFFSET + 20, 4), Ok(4096));
    assert_eq!(t.read(CONFIG_OFFSET + 16, 2), Ok(0));
    assert_eq!(
        t.read(CONFIG_OFFSET + 24, 4),
        Err(MmioError::ConfigOutOfRange {
            offset: CONFIG_OFFSET + 24,
            size: 4
        })
    );
    assert_eq!(t.write(CONFIG_OFFSET, 4, 7), Ok(WriteEffect::None));
    assert_eq!(t.read(CONFIG_OFFSET, 4), Ok(64));
}

#[test]
fn a_driver_sets_the_queue_up_and_is_served_through_the_transport() {
    let mut guest = vec![0u8; MEM_SIZE];
    let mut img = pattern(4096);
    let mut map = [0u64; 1];
    let mut disk = Disk::new(over_vec(&mut img), 4096, 512, &mut map).unwrap();
    let dev = BlkDevice::new(4096, 512, NAME);
    let id = *dev.id();
    let mut t = Transport::new(dev, TransportConfig::new(MEM_SIZE as u64));
    let mut drv = MmioDriver::default();
    drv.begin_init(&mut t, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_BLK_SIZE)
        .unwrap();
    let mut dq = DriverQueue::new(4, RING_BASE);
    drv.queue_set(&mut t, REQUEST_QUEUE, 4, dq.layout().into())
        .unwrap();
    assert_eq!(drv.finish_init(&mut t), Ok(WriteEffect::DriverOk));
    let mut m = GuestMemory::new(&mut guest);
    m.write(HDR, &header(VIRTIO_BLK_T_IN, 3)).unwrap();
    dq.set_desc(&mut m, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
    dq.set_desc(
        &mut m,
        1,
        DATA,
        512,
        VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        2,
    );
    dq.set_desc(&mut m, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
    dq.publish(&mut m, 0);
    let q = t.queue_mut(REQUEST_QUEUE).unwrap();
    let got = serve(q, &mut m, &mut disk, &id).unwrap();
    assert_eq!(
        got,
        Served {
            requests: 1,
            bytes: 512
        }
    );
    assert!(q.needs_interrupt(&m).unwrap());
    assert_eq!(dq.used_idx(&m), 1);
    assert_eq!(dq.used_elem(&m, 0), (0, 513));
    let mut data = vec![0; 512];
    m.read(DATA, &mut data).unwrap();
    assert_eq!(data, pattern(4096)[1536..2048]);
}

#[test]
fn a_write_reads_back_through_the_queue() {
    rig(8, 512, |r| {
        let data: Vec<u8> = (0..1024).map(|i| (i * 7) as u8).collect();
        r.put(DATA, &data);
        assert_eq!(
            r.simple(VIRTIO_BLK_T_OUT, 2, DATA, 1024, false),
            VIRTIO_BLK_S_OK
        );
        assert_eq!(r.last_used(), (0, 1), "a write writes only the status");
        let img = r.image();
        assert_eq!(img[1024..2048], data[..]);
        assert_eq!(img[..1024], pattern(1024)[..]);
        assert_eq!(img[2048..], pattern(4096)[2048..]);
        assert_eq!(r.disk.dirty(), 2);

        r.put(DATA2, &[UNTOUCHED; 1024]);
        assert_eq!(
            r.simple(VIRTIO_BLK_T_IN, 2, DATA2, 1024, true),
            VIRTIO_BLK_S_OK
        );
        assert_eq!(r.last_used(), (0, 1025), "the data and the status");
        assert_eq!(r.get(DATA2, 1024), data);
        assert_eq!(
            r.disk.flow,
            BlockFlow {
                reads: 1,
                writes: 1,
                bytes_read: 1024,
                bytes_written: 1024,
                errors: 0,
            }
        );
    });
}

#[test]
fn several_requests_in_one_call_and_at_most_a_queue_worth() {
    rig(8, 512, |r| {
        r.put(HDR, &header(VIRTIO_BLK_T_IN, 0));
        r.put(HDR + 16, &header(VIRTIO_BLK_T_FLUSH, 0));
        // Chain 0: a read of block 0; chain 3: a flush.
        r.dq.set_desc(&mut r.m, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
        r.dq.set_desc(
            &mut r.m,
            1,
            DATA,
            512,
            VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
            2,
        );
        r.dq.set_desc(&mut r.m, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
        r.dq.set_desc(&mut r.m, 3, HDR + 16, 16, VIRTQ_DESC_F_NEXT, 4);
        r.dq.set_desc(&mut r.m, 4, STATUS + 1, 1, VIRTQ_DESC_F_WRITE, 0);
        r.dq.publish(&mut r.m, 0);
        r.dq.publish(&mut r.m, 3);
        assert_eq!(
            r.serve(),
            Ok(Served {
                requests: 2,
                bytes: 512
            })
        );
        assert_eq!(r.dq.used_elem(&r.m, 0), (0, 513));
        assert_eq!(r.dq.used_elem(&r.m, 1), (3, 1));
        // A full queue of flushes is served whole, and no more.
        for _ in 0..QSIZE {
            r.dq.publish(&mut r.m, 3);
        }
        assert_eq!(r.serve().unwrap().requests, u32::from(QSIZE));
        assert_eq!(r.dq.used_idx(&r.m), 2 + QSIZE);
        assert_eq!(r.serve(), Ok(Served::default()));
    });
}

#[test]
fn flush_and_get_id() {
    rig(8, 512, |r| {
        r.put(HDR, &header(VIRTIO_BLK_T_FLUSH, 0));
        r.chain(&[(HDR, 16, false), (STATUS, 1, true)]);
        assert_eq!(
            r.serve(),
            Ok(Served {
                requests: 1,
                bytes: 0
            })
        );
        assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_OK]);
        assert_eq!(r.last_used(), (0, 1));

        r.put(DATA, &[UNTOUCHED; 32]);
        assert_eq!(
            r.simple(VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true),
            VIRTIO_BLK_S_OK
        );
        assert_eq!(r.get(DATA, 20), b"disk0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(r.last_used(), (0, 21));

        // ID and status in one buffer of 21 bytes.
        r.put(HDR, &header(VIRTIO_BLK_T_GET_ID, 0));
        r.put(DATA, &[UNTOUCHED; 32]);
        r.chain(&[(HDR, 16, false), (DATA, 21, true)]);
        r.serve().unwrap();
        let got = r.get(DATA, 22);
        assert_eq!(got[..20], *b"disk0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(got[20..], [VIRTIO_BLK_S_OK, UNTOUCHED]);
        assert_eq!(r.last_used(), (0, 21));

        // A short buffer takes what fits.
        r.put(DATA, &[UNTOUCHED; 32]);
        r.chain(&[(HDR, 16, false), (DATA, 4, true)]);
        r.serve().unwrap();
        assert_eq!(
            r.get(DATA, 5),
            [b'd', b'i', b's', VIRTIO_BLK_S_OK, UNTOUCHED]
        );
        assert_eq!(r.last_used(), (0, 4));
        assert_eq!(r.image(), pattern(4096), "no disk access");
        assert_eq!(r.disk.flow, BlockFlow::default());
    });
}

#[test]
fn an_unknown_type_is_unsupported() {
    rig(8, 512, |r| {
        for kind in [2, 11, 13, 0xdead] {
            r.put(DATA, &[UNTOUCHED; 512]);
            assert_eq!(r.simple(kind, 0, DATA, 512, true), VIRTIO_BLK_S_UNSUPP);
            assert_eq!(r.last_used(), (0, 1));
            assert_eq!(r.get(DATA, 512), [UNTOUCHED; 512]);
        }
        assert_eq!(r.image(), pattern(4096));
        assert_eq!(r.disk.flow, BlockFlow::default());
    });
}

#[test]
fn refused_requests_are_io_errors_that_move_nothing() {
    for bs in [512u32, 4096] {
        rig(4, bs, |r| {
            let cap = r.disk.capacity();
            let end = cap / SECTOR_SIZE;
            let spb = u64::from(bs) / SECTOR_SIZE;
            let cases = [
                // (kind, sector, len)
                (VIRTIO_BLK_T_IN, end, bs),
                (VIRTIO_BLK_T_OUT, end, bs),
                (VIRTIO_BLK_T_IN, end - spb, 2 * bs),
                (VIRTIO_BLK_T_OUT, end - spb, 2 * bs),
                (VIRTIO_BLK_T_OUT, 0, 256),
                (VIRTIO_BLK_T_IN, 0, bs + 256),
                (VIRTIO_BLK_T_IN, u64::MAX, bs),
                (VIRTIO_BLK_T_OUT, u64::MAX / SECTOR_SIZE, bs),
            ];
            let mut errors = 0;
            for (kind, sector, len) in cases {
                r.put(DATA, &vec![UNTOUCHED; len as usize]);
                let s = r.simple(kind, sector, DATA, len, kind == VIRTIO_BLK_T_IN);
                assert_eq!(s, VIRTIO_BLK_S_IOERR, "{kind} at {sector} len {len}");
                assert_eq!(r.last_used(), (0, 1));
                assert_eq!(r.get(DATA, len as usize), vec![UNTOUCHED; len as usize]);
                errors += 1;
            }
            if bs == 4096 {
                // Sector 1 is not at a 4096-byte block boundary.
                r.put(DATA, &[UNTOUCHED; 4096]);
                assert_eq!(
                    r.simple(VIRTIO_BLK_T_OUT, 1, DATA, 4096, false),
                    VIRTIO_BLK_S_IOERR
                );
                errors += 1;
            }
            assert_eq!(r.image(), pattern(cap));
            assert_eq!(r.disk.dirty(), 0);
            assert_eq!(
                r.disk.flow,
                BlockFlow {
                    errors,
                    ..BlockFlow::default()
                }
            );
            // No data at all: not whole blocks either.
            r.put(HDR, &header(VIRTIO_BLK_T_IN, 0));
            r.put(STATUS, &[UNTOUCHED]);
            r.chain(&[(HDR, 16, false), (STATUS, 1, true)]);
            r.serve().unwrap();
            assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_IOERR]);
            assert_eq!(r.disk.flow.errors, errors + 1);
        });
    }
}

#[test]
fn data_split_over_descriptors() {
    rig(8, 512, |r| {
        let data: Vec<u8> = (0..1536).map(|i| (i * 3 + 1) as u8).collect();
        r.put(DATA, &data[..512]);
        r.put(DATA2, &data[512..]);
        r.put(HDR, &header(VIRTIO_BLK_T_OUT, 4));
        r.chain(&[
            (HDR, 16, false),
            (DATA, 512, false),
            (DATA2, 1024, false),
            (STATUS, 1, true),
        ]);
        assert_eq!(
            r.serve(),
            Ok(Served {
                requests: 1,
                bytes: 1536
            })
        );
        assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_OK]);
        assert_eq!(r.image()[2048..3584], data[..]);

        // Read it back in pieces that are not whole blocks: 100 + 1436.
        r.put(DATA, &[UNTOUCHED; 2048]);
        r.put(DATA2, &[UNTOUCHED; 2048]);
        r.put(HDR, &header(VIRTIO_BLK_T_IN, 4));
        r.chain(&[
            (HDR, 16, false),
            (DATA, 100, true),
            (DATA2, 1436, true),
            (STATUS, 1, true),
        ]);
        assert_eq!(
            r.serve(),
            Ok(Served {
                requests: 1,
                bytes: 1536
            })
        );
        assert_eq!(r.last_used(), (0, 1537));
        assert_eq!(r.get(DATA, 101), [&data[..100], &[UNTOUCHED]].concat());
        assert_eq!(r.get(DATA2, 1437), [&data[100..], &[UNTOUCHED]].concat());
        assert_eq!(
            r.disk.flow,
            BlockFlow {
                reads: 1,
                writes: 1,
                bytes_read: 1536,
                bytes_written: 1536,
                errors: 0,
            },
            "one disk request each"
        );

        // Split, and not whole blocks in all: refused before any piece.
        r.put(DATA, &[UNTOUCHED; 2048]);
        r.put(DATA2, &[UNTOUCHED; 2048]);
        r.chain(&[
            (HDR, 16, false),
            (DATA, 512, true),
            (DATA2, 300, true),
            (STATUS, 1, true),
        ]);
        r.serve().unwrap();
        assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_IOERR]);
        assert_eq!(r.get(DATA, 512), [UNTOUCHED; 512]);
        assert_eq!(r.disk.flow.errors, 1);
    });
}

#[test]
fn header_data_and_status_may_share_descriptors() {
    rig(8, 512, |r| {
        // Header and data in one readable buffer, status apart.
        let data = vec![0x42u8; 512];
        r.put(DATA, &header(VIRTIO_BLK_T_OUT, 1));
        r.put(DATA + 16, &data);
        r.put(STATUS, &[UNTOUCHED]);
        r.chain(&[(DATA, 528, false), (STATUS, 1, true)]);
        assert_eq!(r.serve().unwrap().bytes, 512);
        assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_OK]);
        assert_eq!(r.image()[512..1024], data[..]);

        // The header split 8 + 8 + data, data in two: 4 + 12, 500.
        let h = header(VIRTIO_BLK_T_OUT, 3);
        r.put(HDR, &h[..8]);
        r.put(HDR + 0x100, &h[8..]);
        r.put(HDR + 0x108, &[1; 4]);
        r.put(DATA, &[2; 508]);
        r.chain(&[
            (HDR, 8, false),
            (HDR + 0x100, 12, false),
            (DATA, 508, false),
            (STATUS, 1, true),
        ]);
        r.put(STATUS, &[UNTOUCHED]);
        assert_eq!(r.serve().unwrap().bytes, 512);
        assert_eq!(r.get(STATUS, 1), [VIRTIO_BLK_S_OK]);
        assert_eq!(r.image()[1536..2048], [&[1u8; 4][..], &[2; 508]].concat());

        // Header apart, data and status in one writable buffer of 513.
        r.put(HDR, &header(VIRTIO_BLK_T_IN, 1));
        r.put(DATA2, &[UNTOUCHED; 600]);
        r.chain(&[(HDR, 16, false), (DATA2, 513, true)]);
        assert_eq!(r.serve().unwrap().bytes, 512);
        assert_eq!(r.last_used(), (0, 513));
        assert_eq!(r.get(DATA2, 512), data);
        assert_eq!(r.get(DATA2 + 512, 2), [VIRTIO_BLK_S_OK, UNTOUCHED]);
    });
}

#[test]
fn chains_that_break_the_rules_are_refused_by_name() {
    let out_of_memory = MEM_SIZE as u64 + 0x1000;
    let cases: [(u32, &[Buf], BlkError); 8] = [
        (
            VIRTIO_BLK_T_IN,
            &[(HDR, 8, false), (STATUS, 1, true)],
            BlkError::HeaderTooShort { head: 0, len: 8 },
        ),
        (
            VIRTIO_BLK_T_OUT,
            &[(HDR, 16, false), (DATA, 512, false)],
            BlkError::NoStatus { head: 0 },
        ),
        (
            VIRTIO_BLK_T_IN,
            &[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)],
            BlkError::ReadableData {
                head: 0,
                kind: VIRTIO_BLK_T_IN,
                len: 512,
            },
        ),
        (
            VIRTIO_BLK_T_GET_ID,
            &[(HDR, 20, false), (STATUS, 21, true)],
            BlkError::ReadableData {
                head: 0,
                kind: VIRTIO_BLK_T_GET_ID,
                len: 4,
            },
        ),
        (
            VIRTIO_BLK_T_OUT,
            &[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)],
            BlkError::WritableData { head: 0, len: 512 },
        ),
        (
            VIRTIO_BLK_T_OUT,
            &[
                (HDR, 16, false),
                (out_of_memory, 512, false),
                (STATUS, 1, true),
            ],
            BlkError::Queue(QueueError::BufferOutsideMemory {
                addr: out_of_memory,
                len: 512,
            }),
        ),
        (
            VIRTIO_BLK_T_IN,
            &[(HDR, 16, false), (DATA, 512, true), (u64::MAX - 1, 1, true)],
            BlkError::Queue(QueueError::BufferOutsideMemory {
                addr: u64::MAX - 1,
                len: 1,
            }),
        ),
        (
            VIRTIO_BLK_T_OUT,
            &[(STATUS, 1, true), (HDR, 16, false), (DATA, 512, false)],
            BlkError::Queue(QueueError::WritableBeforeReadable { index: 1 }),
        ),
    ];
    for (kind, bufs, want) in cases {
        rig(8, 512, |r| {
            r.put(HDR, &header(kind, 0));
            r.put(DATA, &[0x77; 512]);
            r.put(STATUS, &[UNTOUCHED; 32]);
            r.chain(bufs);
            let e = r.serve().unwrap_err();
            assert_eq!(e, want);
            assert!(!e.to_string().is_empty());
            assert_eq!(r.dq.used_idx(&r.m), 0, "nothing returned");
            assert_eq!(r.get(STATUS, 32), [UNTOUCHED; 32], "no status written");
            assert_eq!(r.image(), pattern(4096));
            assert_eq!(r.disk.flow, BlockFlow::default());
        });
    }
    assert_eq!(
        BlkError::ReadableData {
            head: 3,
            kind: VIRTIO_BLK_T_IN,
            len: 512
        }
        .to_string(),
        "block read request chain 3 has 512 device-readable bytes after its header; the device writes this request's data, so its buffers must be device-writable"
    );
    assert_eq!(
        BlkError::HeaderTooShort { head: 1, len: 8 }.to_string(),
        "block request chain 1 has 8 device-readable bytes, less than the 16-byte request header"
    );
}

// The property test: arbitrary chains against a model of the rules.

/// One buffer of a generated chain.
#[derive(Clone, Debug)]
struct GenBuf {
    len: u32,
    writable: bool,
    outside: bool,
}

/// One generated request.
#[derive(Clone, Debug)]
struct GenReq {
    kind: u32,
    sector: u64,
    bufs: Vec<GenBuf>,
    seed: u8,
}

/// Bytes of the property test's disk.
const PROP_DISK: u64 = 32 * 1024;

/// Where generated buffer `i` lies (each up to 0x2400 bytes).
fn buf_addr(i: usize) -> u64 {
    0x1000 + 0x2400 * i as u64
}

fn gen_len() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(vec![0u32, 1, 8, 15, 16, 17, 20, 21, 256, 511, 512, 513, 528, 529, 1024, 4096, 4097, 4112]),
        1 => 0..9000u32,
    ]
}

fn gen_buf() -> impl Strategy<Value = GenBuf> {
    (gen_len(), any::<bool>(), prop::bool::weighted(0.03)).prop_map(|(len, writable, outside)| {
        GenBuf {
            len,
            writable,
            outside,
        }
    })
}

fn gen_kind() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(VIRTIO_BLK_T_IN),
        3 => Just(VIRTIO_BLK_T_OUT),
        1 => Just(VIRTIO_BLK_T_FLUSH),
        1 => Just(VIRTIO_BLK_T_GET_ID),
        1 => any::<u32>(),
    ]
}

/// Sectors of the property test's disk, [`PROP_DISK`] bytes.
fn gen_sector() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0..9u64).prop_map(|b| b * 8),
        2 => 0..72u64,
        1 => any::<u64>(),
    ]
}

/// Any chain of a few buffers, mostly readable ones first.
fn gen_any_req() -> impl Strategy<Value = GenReq> {
    (
        gen_kind(),
        gen_sector(),
        prop::collection::vec(gen_buf(), 1..6),
        prop::bool::weighted(0.9),
        any::<u8>(),
    )
        .prop_map(|(kind, sector, mut bufs, ordered, seed)| {
            if ordered {
                bufs.sort_by_key(|b| b.writable);
            }
            GenReq {
                kind,
                sector,
                bufs,
                seed,
            }
        })
}

/// A chain as a driver builds one: the header whole, split 8 + 8 or
/// sharing the first data buffer, the data in up to three buffers in the
/// request's direction, the status apart or at the end of the last one.
fn gen_well_formed_req() -> impl Strategy<Value = GenReq> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![4096u32, 8192]),
        2 => prop::sample::select(vec![512u32, 1024, 2048]),
        1 => 1..4200u32,
    ];
    (
        gen_kind(),
        gen_sector(),
        prop::collection::vec(piece, 0..4),
        0..3u8,
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(kind, sector, pieces, split, shared, seed)| {
            let buf = |len, writable| GenBuf {
                len,
                writable,
                outside: false,
            };
            let writes = kind == VIRTIO_BLK_T_OUT;
            let mut bufs: Vec<GenBuf> = pieces.iter().map(|&len| buf(len, !writes)).collect();
            match split {
                0 => bufs.insert(0, buf(16, false)),
                1 => bufs
                    .splice(0..0, [buf(8, false), buf(8, false)])
                    .for_each(drop),
                _ if writes && !bufs.is_empty() => bufs[0].len += 16,
                _ => bufs.insert(0, buf(16, false)),
            }
            match bufs.last_mut() {
                Some(last) if shared && last.writable => last.len += 1,
                _ => bufs.push(buf(1, true)),
            }
            GenReq {
                kind,
                sector,
                bufs,
                seed,
            }
        })
}

fn gen_req() -> impl Strategy<Value = GenReq> {
    prop_oneof![2 => gen_well_formed_req(), 1 => gen_any_req()]
}

/// What the rules say a request comes to.
#[derive(Debug, PartialEq)]
enum Expect {
    /// The chain breaks the queue's rules.
    Queue,
    /// It breaks a request rule.
    Rule,
    /// It is answered with this status, and this used length.
    Answer(u8, u32),
}

fn model(req: &GenReq, bs: u32, cap: u64) -> Expect {
    let writable_first = req.bufs.windows(2).any(|w| w[0].writable && !w[1].writable);
    if req.bufs.iter().any(|b| b.outside) || writable_first {
        return Expect::Queue;
    }
    let sum = |w: bool| -> u32 {
        req.bufs
            .iter()
            .filter(|b| b.writable == w)
            .map(|b| b.len)
            .sum()
    };
    let (readable, writable) = (sum(false), sum(true));
    if readable < 16 || writable < 1 {
        return Expect::Rule;
    }
    let (data_in, room) = (readable - 16, writable - 1);
    let disk = |len: u32| {
        let bs = u64::from(bs);
        let len = u64::from(len);
        let ok = req.sector.checked_mul(512).is_some_and(|off| {
            len > 0
                && off % bs == 0
                && len % bs == 0
                && off.checked_add(len).is_some_and(|end| end <= cap)
        });
        if ok {
            VIRTIO_BLK_S_OK
        } else {
            VIRTIO_BLK_S_IOERR
        }
    };
    match req.kind {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID if data_in != 0 => Expect::Rule,
        VIRTIO_BLK_T_OUT if room != 0 => Expect::Rule,
        VIRTIO_BLK_T_IN => match disk(room) {
            VIRTIO_BLK_S_OK => Expect::Answer(VIRTIO_BLK_S_OK, room + 1),
            s => Expect::Answer(s, 1),
        },
        VIRTIO_BLK_T_OUT => Expect::Answer(disk(data_in), 1),
        VIRTIO_BLK_T_FLUSH => Expect::Answer(VIRTIO_BLK_S_OK, 1),
        VIRTIO_BLK_T_GET_ID => Expect::Answer(VIRTIO_BLK_S_OK, room.min(20) + 1),
        _ => Expect::Answer(VIRTIO_BLK_S_UNSUPP, 1),
    }
}

/// Lays a generated request out: the readable bytes are the header then
/// bytes from `seed`, the writable ones [`UNTOUCHED`]. Returns the bytes
/// after the header and the buffers as laid out.
fn lay_out(r: &mut Rig<'_>, req: &GenReq) -> (Vec<u8>, Vec<Buf>) {
    let readable: u32 = req.bufs.iter().filter(|b| !b.writable).map(|b| b.len).sum();
    let mut stream = header(req.kind, req.sector).to_vec();
    stream.extend(
        (0..u64::from(readable)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(req.seed)),
    );
    let mut at = 0;
    let mut bufs = Vec::new();
    for (i, b) in req.bufs.iter().enumerate() {
        let addr = if b.outside {
            MEM_SIZE as u64 + buf_addr(i)
        } else {
            buf_addr(i)
        };
        if !b.outside {
            if b.writable {
                r.put(addr, &vec![UNTOUCHED; b.len as usize]);
            } else {
                let n = b.len as usize;
                r.put(addr, &stream[at..at + n]);
                at += n;
            }
        }
        bufs.push((addr, b.len, b.writable));
    }
    let data = stream
        .get(16..readable.max(16) as usize)
        .unwrap_or_default()
        .to_vec();
    (data, bufs)
}

/// The guest's writable bytes of a laid-out chain, in order.
fn writable_bytes(r: &Rig<'_>, bufs: &[Buf]) -> Vec<u8> {
    bufs.iter()
        .filter(|b| b.2)
        .flat_map(|&(addr, len, _)| r.get(addr, len as usize))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_chains_do_what_the_rules_say(
        bs in prop::sample::select(vec![512u32, 4096]),
        reqs in prop::collection::vec(gen_req(), 1..5),
    ) {
        rig(PROP_DISK / u64::from(bs), bs, |r| -> Result<(), TestCaseError> {
            let cap = r.disk.capacity();
            for req in &reqs {
                let (data, bufs) = lay_out(r, req);
                r.chain(&bufs);
                let before = r.image();
                let flow = r.disk.flow;
                let used = r.dq.used_idx(&r.m);
                let expect = model(req, bs, cap);
                match r.serve() {
                    Err(e) => {
                        prop_assert!(!e.to_string().is_empty());
                        match e {
                            BlkError::Queue(_) => prop_assert_eq!(expect, Expect::Queue),
                            _ => prop_assert_eq!(expect, Expect::Rule),
                        }
                        prop_assert_eq!(r.image(), before);
                        prop_assert_eq!(r.disk.flow, flow);
                        prop_assert_eq!(r.dq.used_idx(&r.m), used);
                        if !req.bufs.iter().any(|b| b.outside) {
                            let w = writable_bytes(r, &bufs);
                            prop_assert!(w.iter().all(|&b| b == UNTOUCHED));
                        }
                        // The guest would be stopped here.
                        return Ok(());
                    }
                    Ok(served) => {
                        prop_assert_eq!(served.requests, 1);
                        prop_assert_eq!(r.dq.used_idx(&r.m), used.wrapping_add(1));
                        let (id, len) = r.last_used();
                        prop_assert_eq!(id, 0);
                        let w = writable_bytes(r, &bufs);
                        let status = *w.last().unwrap();
                        prop_assert_eq!(&expect, &Expect::Answer(status, len));
                        let room = w.len() - 1;
                        let off = req.sector.wrapping_mul(512) as usize;
                        match (status, req.kind) {
                            (VIRTIO_BLK_S_OK, VIRTIO_BLK_T_OUT) => {
                                let mut after = before.clone();
                                after[off..off + data.len()].copy_from_slice(&data);
                                prop_assert_eq!(r.image(), after);
                                prop_assert_eq!(served.bytes, data.len() as u64);
                                prop_assert_eq!(r.disk.flow.writes, flow.writes + 1);
                                prop_assert_eq!(r.disk.flow.bytes_written, flow.bytes_written + data.len() as u64);
                            }
                            (VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN) => {
                                prop_assert_eq!(r.image(), before.clone());
                                prop_assert_eq!(&w[..room], &before[off..off + room]);
                                prop_assert_eq!(served.bytes, room as u64);
                                prop_assert_eq!(r.disk.flow.reads, flow.reads + 1);
                            }
                            (VIRTIO_BLK_S_OK, VIRTIO_BLK_T_GET_ID) => {
                                let n = room.min(VIRTIO_BLK_ID_BYTES);
                                prop_assert_eq!(&w[..n], &r.id[..n]);
                                prop_assert!(w[n..room].iter().all(|&b| b == UNTOUCHED));
                                prop_assert_eq!(r.image(), before);
                                prop_assert_eq!(r.disk.flow, flow);
                            }
                            (VIRTIO_BLK_S_IOERR, _) => {
                                prop_assert_eq!(r.image(), before);
                                prop_assert!(w[..room].iter().all(|&b| b == UNTOUCHED));
                                prop_assert_eq!(
                                    r.disk.flow,
                                    BlockFlow { errors: flow.errors + 1, ..flow }
                                );
                                prop_assert_eq!(served.bytes, 0);
                            }
                            _ => {
                                prop_assert_eq!(r.image(), before);
                                prop_assert!(w[..room].iter().all(|&b| b == UNTOUCHED));
                                prop_assert_eq!(r.disk.flow, flow);
                                prop_assert_eq!(served.bytes, 0);
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
