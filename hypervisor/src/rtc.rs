//! The real-time clock's fields (CMOS RTC: BCD or binary, 12- or 24-hour, a century register) turned into seconds since the Unix epoch, and the TSC-to-time arithmetic the wall clock and hvt `poll` use. Pure and host-tested; the platform reads the registers.
#![forbid(unsafe_code)]

/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// RTC status register B: hours are 24-hour.
pub const STATUS_B_24H: u8 = 1 << 1;
/// RTC status register B: fields are binary, not BCD.
pub const STATUS_B_BINARY: u8 = 1 << 2;
/// The PM flag in a 12-hour hour field.
const HOUR_PM: u8 = 0x80;

/// The RTC's fields as read (raw, before BCD decoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcFields {
    /// Seconds.
    pub second: u8,
    /// Minutes.
    pub minute: u8,
    /// Hours (with the PM flag in 12-hour mode).
    pub hour: u8,
    /// Day of the month.
    pub day: u8,
    /// Month.
    pub month: u8,
    /// Year in the century.
    pub year: u8,
    /// Century (0 if the register is absent: taken as 20).
    pub century: u8,
    /// Status register B.
    pub status_b: u8,
}

fn bcd(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0xf);
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl RtcFields {
    /// Seconds since the Unix epoch, or `None` if a field is out of range.
    pub fn epoch_seconds(&self) -> Option<u64> {
        let binary = self.status_b & STATUS_B_BINARY != 0;
        let dec = |v: u8| if binary { Some(v) } else { bcd(v) };
        let pm = self.status_b & STATUS_B_24H == 0 && self.hour & HOUR_PM != 0;
        let mut hour = dec(self.hour & !HOUR_PM)?;
        if self.status_b & STATUS_B_24H == 0 {
            // 12-hour clock: 12 AM is 0, 12 PM is 12.
            hour = match (hour, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
        }
        let (second, minute) = (dec(self.second)?, dec(self.minute)?);
        let (day, month, year) = (dec(self.day)?, dec(self.month)?, dec(self.year)?);
        let century = match dec(self.century)? {
            0 => 20,
            c => c,
        };
        if second > 59
            || minute > 59
            || hour > 23
            || !(1..=31).contains(&day)
            || !(1..=12).contains(&month)
        {
            return None;
        }
        let y = i64::from(century) * 100 + i64::from(year);
        let days = days_from_civil(y, month.into(), day.into());
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        u64::try_from(secs).ok()
    }
}

/// Nanoseconds in `ticks` of a TSC running at `hz` (saturating).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * u128::from(NS_PER_S) / u128::from(hz)).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(y: u8, mo: u8, d: u8, h: u8, mi: u8, s: u8, b: u8) -> RtcFields {
        RtcFields {
            second: s,
            minute: mi,
            hour: h,
            day: d,
            month: mo,
            year: y,
            century: if b & STATUS_B_BINARY != 0 { 20 } else { 0x20 },
            status_b: b,
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // Bochs's old default clock and the one the tool sets now.
        assert_eq!(
            fields(0x00, 0x01, 0x01, 0, 0, 0, STATUS_B_24H).epoch_seconds(),
            Some(946_684_800)
        );
        assert_eq!(
            fields(0x26, 0x01, 0x01, 0, 0, 0, STATUS_B_24H).epoch_seconds(),
            Some(1_767_225_600)
        );
        // Binary fields, and a leap day.
        let b = STATUS_B_24H | STATUS_B_BINARY;
        assert_eq!(
            fields(24, 2, 29, 13, 45, 30, b).epoch_seconds(),
            Some(1_709_214_330)
        );
        // 12-hour clock: 12 AM, 12 PM and 1 PM.
        assert_eq!(
            fields(0, 1, 1, 0x12, 0, 0, 0).epoch_seconds(),
            Some(946_684_800)
        );
        assert_eq!(
            fields(0, 1, 1, 0x92, 0, 0, 0).epoch_seconds(),
            Some(946_684_800 + 12 * 3600)
        );
        assert_eq!(
            fields(0, 1, 1, 0x81, 0, 0, 0).epoch_seconds(),
            Some(946_684_800 + 13 * 3600)
        );
    }

    #[test]
    fn bad_fields_are_none() {
        assert_eq!(
            fields(0x1a, 1, 1, 0, 0, 0, STATUS_B_24H).epoch_seconds(),
            None,
            "not BCD"
        );
        assert_eq!(
            fields(0, 0x13, 1, 0, 0, 0, STATUS_B_24H).epoch_seconds(),
            None,
            "month 13"
        );
        assert_eq!(
            fields(0, 1, 0, 0, 0, 0, STATUS_B_24H).epoch_seconds(),
            None,
            "day 0"
        );
        assert_eq!(
            fields(0, 1, 1, 0x24, 0, 0, STATUS_B_24H).epoch_seconds(),
            None,
            "hour 24"
        );
    }

    #[test]
    fn tsc_arithmetic() {
        assert_eq!(ticks_to_ns(100_000_000, 100_000_000), NS_PER_S);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }

    proptest! {
        #[test]
        fn any_fields_never_panic(v in any::<[u8; 8]>()) {
            let f = RtcFields { second: v[0], minute: v[1], hour: v[2], day: v[3], month: v[4], year: v[5], century: v[6], status_b: v[7] };
            let _ = f.epoch_seconds();
        }
    }
}
