//! The power campaign: per engine, power cuts at seeded points on a lossy FUSE mount
//! ([`crate::power::campaign`]): every row acknowledged before a cut must be there after it (or be
//! lost by the setup's documented design), with nothing that was never acknowledged but the commit
//! in flight.

use std::time::Instant;

use super::database::TortureResult;
use super::{Settings, Tally};
use crate::power;
use crate::progress::Progress;

pub(super) fn campaign(
    settings: &Settings,
    deadline: Instant,
    tally: &mut Tally,
    progress: &Progress,
) -> TortureResult<()> {
    for setup in [power::Setup::SqliteWal, power::Setup::Duckdb] {
        let started = Instant::now();
        let tears = settings
            .tears
            .unwrap_or_else(|| power::Tears::default_for(setup.engine()));
        progress.stage(format!(
            "power {} {}: {} cuts",
            setup.engine(),
            setup.name(),
            settings.power_iterations
        ));
        let found = match power::campaign(
            setup,
            tears,
            settings.power_iterations,
            settings.seed,
            deadline,
            &|| progress.step(),
        ) {
            Ok(found) => found,
            Err(power::PowerError::Unsupported(reason)) => {
                // Never a pass: a machine without FUSE cannot say anything about power cuts.
                tally.failures.push(format!(
                    "power {}: skipped, cannot mount the lossy filesystem: {reason}",
                    setup.name()
                ));
                continue;
            }
            Err(power::PowerError::Setup(words) | power::PowerError::TimedOut(words)) => {
                tally
                    .failures
                    .push(format!("power {}: could not run: {words}", setup.name()));
                continue;
            }
        };
        tally.lines.push(format!(
            "power {:<7} {}, tearing {}: {} iterations ({} cut while the workload ran, {} with \
             unsynced writes: {} bytes pending, {} dropped) in {:.0} s; acknowledged rows: {} \
             checked, {} lost by design, {} lost with a report, {} lost beyond the promise (must \
             be 0, a report or not), {} phantom",
            setup.engine(),
            setup.name(),
            tears.name(),
            found.iterations,
            found.cuts_inside,
            found.cuts_with_unsynced_writes,
            found.pending_bytes,
            found.pending_bytes_dropped,
            started.elapsed().as_secs_f64(),
            found.rows_checked,
            found.lost_by_design,
            found.lost_with_report,
            found.lost_beyond_promise,
            found.phantom_rows
        ));
        // A campaign whose cuts never found anything unsynced proved nothing about power cuts.
        if found.iterations > 0 && found.cuts_with_unsynced_writes == 0 {
            tally.failures.push(format!(
                "power {}: none of {} cuts found an unsynced write",
                setup.name(),
                found.iterations
            ));
        }
        tally.failures.extend(found.failures);
    }
    Ok(())
}
