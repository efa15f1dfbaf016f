//! Time for guests that ask for it (Solo5 hvt `walltime` and `poll`): the TSC's rate, calibrated once against the PIT (channel 2, 10 ms), and the wall clock, the CMOS real-time clock read once plus the TSC since.

use super::instr::{self, inb, outb};
use crate::rtc::{self, RtcFields};
use spin::Once;

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// PIT counts calibrated over (10 ms).
const PIT_COUNT: u16 = 11_932;
/// PIT channel 2 data port.
const PIT_CH2: u16 = 0x42;
/// PIT mode/command port.
const PIT_CMD: u16 = 0x43;
/// Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
const PIT_CH2_MODE0: u8 = 0b1011_0000;
/// The system control port B: bit 0 gates channel 2, bit 1 drives the
/// speaker, bit 5 reads channel 2's output.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;
/// Most polls of the PIT's output before calibration gives up.
const PIT_POLLS: u64 = 100_000_000;
/// The TSC rate used when calibration fails: the emulator's (one tick per
/// instruction at `ips=100000000`).
const FALLBACK_HZ: u64 = 100_000_000;

/// CMOS index and data ports.
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
/// Keep NMIs disabled while selecting a CMOS register.
const CMOS_NMI_OFF: u8 = 0x80;
const RTC_SECONDS: u8 = 0x00;
const RTC_MINUTES: u8 = 0x02;
const RTC_HOURS: u8 = 0x04;
const RTC_DAY: u8 = 0x07;
const RTC_MONTH: u8 = 0x08;
const RTC_YEAR: u8 = 0x09;
const RTC_STATUS_A: u8 = 0x0a;
const RTC_STATUS_B: u8 = 0x0b;
/// The century register (ACPI FADT's default).
const RTC_CENTURY: u8 = 0x32;
/// Status A: an update is in progress.
const RTC_UPDATING: u8 = 0x80;

static TSC_HZ: Once<u64> = Once::new();
/// The wall clock at a TSC value: (seconds since the epoch, TSC then).
static WALL: Once<(u64, u64)> = Once::new();

fn calibrate() -> u64 {
    // SAFETY: the PIT's channel 2 and port B belong to the hypervisor (no
    // guest is given port I/O); this runs once, on one core, before any hvt
    // guest needs it, and leaves the speaker off.
    unsafe {
        let b = inb(PORT_B);
        outb(PORT_B, (b & !PORT_B_SPEAKER) | PORT_B_GATE2);
        outb(PIT_CMD, PIT_CH2_MODE0);
        outb(PIT_CH2, PIT_COUNT as u8);
        outb(PIT_CH2, (PIT_COUNT >> 8) as u8);
        let t0 = instr::rdtsc();
        let mut polls = 0;
        while inb(PORT_B) & PORT_B_OUT2 == 0 {
            polls += 1;
            if polls > PIT_POLLS {
                log::warn!(
                    "TSC calibration: the PIT never counted down; assuming {FALLBACK_HZ} Hz"
                );
                return FALLBACK_HZ;
            }
        }
        let ticks = instr::rdtsc().wrapping_sub(t0);
        outb(PORT_B, b & !PORT_B_SPEAKER);
        match ticks * PIT_HZ / u64::from(PIT_COUNT) {
            0 => FALLBACK_HZ,
            hz => hz,
        }
    }
}

/// TSC ticks per second (calibrated on first use).
pub fn tsc_hz() -> u64 {
    *TSC_HZ.call_once(|| {
        let hz = calibrate();
        log::info!("TSC runs at {} kHz (calibrated against the PIT)", hz / 1000);
        hz
    })
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: the CMOS ports belong to the hypervisor; selecting a register
    // and reading it changes nothing else.
    unsafe {
        outb(CMOS_INDEX, CMOS_NMI_OFF | reg);
        inb(CMOS_DATA)
    }
}

fn read_rtc() -> RtcFields {
    // Wait out an update in progress (it lasts under 2 ms).
    for _ in 0..PIT_POLLS {
        if cmos(RTC_STATUS_A) & RTC_UPDATING == 0 {
            break;
        }
    }
    RtcFields {
        second: cmos(RTC_SECONDS),
        minute: cmos(RTC_MINUTES),
        hour: cmos(RTC_HOURS),
        day: cmos(RTC_DAY),
        month: cmos(RTC_MONTH),
        year: cmos(RTC_YEAR),
        century: cmos(RTC_CENTURY),
        status_b: cmos(RTC_STATUS_B),
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn wall_ns() -> u64 {
    let (secs, at) = *WALL.call_once(|| {
        let fields = read_rtc();
        let secs = fields.epoch_seconds().unwrap_or_else(|| {
            log::warn!(
                "the real-time clock reads {fields:?}, not a date; wall time starts at the epoch"
            );
            0
        });
        (secs, instr::rdtsc())
    });
    let since = rtc::ticks_to_ns(instr::rdtsc().wrapping_sub(at), tsc_hz());
    secs.saturating_mul(rtc::NS_PER_S).saturating_add(since)
}
