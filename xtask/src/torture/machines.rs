//! The two-machine campaign: per share (SFTP, SMB, GlusterFS) and engine, seeded rounds of a
//! writer on one of two machines (hosts with their own boot id, each through its own client
//! mount), half of them SIGKILLed after a seeded number of commits; a writer refused because
//! the other machine's dead writer owns the database is followed by the operator's release
//! ([`crate::machines`]). Every open must find every row acknowledged before it, on either
//! machine: 0 lost.

use std::process::Command;

use store_core::Engine;
use store_testkit::shares::ShareKind;

use super::database::TortureResult;
use super::{ENGINES, Settings, Tally};
use crate::limits::{CELL_TIME_LIMIT, run_within};
use crate::machines::{ShareTortureArgs, ShareTortureTally, TORTURE_LINE_PREFIX, engine_works_on};
use crate::progress::Progress;

/// The shares and engines the campaign runs (DuckDB cannot work through smbnetfs: its open is
/// refused there, as the share cells check).
fn combinations() -> Vec<(ShareKind, Engine)> {
    ShareKind::ALL
        .into_iter()
        .flat_map(|share| ENGINES.map(|engine| (share, engine)))
        .filter(|(share, engine)| engine_works_on(*engine, *share))
        .collect()
}

/// How many steps the campaign has, for the progress bar.
pub(super) fn count() -> usize {
    combinations().len()
}

pub(super) fn campaign(
    settings: &Settings,
    tally: &mut Tally,
    progress: &Progress,
) -> TortureResult<()> {
    for (share, engine) in combinations() {
        progress.stage(format!(
            "machines {engine} {}: {} rounds",
            share.name(),
            settings.machine_rounds
        ));
        let started = std::time::Instant::now();
        let context = format!("machines/{engine}/{}", share.name());
        let finished = run_within(
            Command::new(std::env::current_exe()?).args(ShareTortureArgs::arguments(
                share,
                engine,
                settings.machine_rounds,
                settings.seed,
            )),
            CELL_TIME_LIMIT,
        )?;
        progress.step();
        let result: Option<Result<ShareTortureTally, String>> =
            String::from_utf8_lossy(&finished.stdout)
                .lines()
                .find_map(|line| {
                    serde_json::from_str(line.strip_prefix(TORTURE_LINE_PREFIX)?).ok()
                });
        let found = match result {
            Some(Ok(found)) => found,
            Some(Err(words)) => {
                // A share that cannot start here is a failure too: CI installs them.
                tally
                    .failures
                    .push(format!("{context}: could not run: {words}"));
                continue;
            }
            None => {
                tally.failures.push(format!(
                    "{context}: no result: {}",
                    finished.why_no_result(CELL_TIME_LIMIT)
                ));
                continue;
            }
        };
        tally.lines.push(format!(
            "{context}: {} rounds in {:.0} s ({} writers SIGKILLed, {} crashed owners taken over \
             on their machine, {} opens refused by the other machine's dead owner then released \
             by the operator); acknowledged rows: {}, lost: {} (must be 0)",
            found.rounds,
            started.elapsed().as_secs_f64(),
            found.kills,
            found.takeovers,
            found.refused_then_released,
            found.acknowledged,
            found.lost
        ));
        if found.rounds < settings.machine_rounds {
            tally.failures.push(format!(
                "{context}: {} of {} rounds ran",
                found.rounds, settings.machine_rounds
            ));
        }
        tally.check(context, &found.failures);
    }
    Ok(())
}
