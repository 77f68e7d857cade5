//! What the account has left, in effects: the balance read off the question path, and the
//! admins warned before the configured model's package runs out, or when it has (a 402).

use std::time::Instant;

use super::{BALANCE_EVERY, Bot};
use crate::{clock, owner};

impl Bot {
    /// At start and after a batch of updates: the balance read, at most every few minutes, so
    /// never on the path of a question. After the first read only with a token a question
    /// already got, so that an idle bot costs no OAuth request of its own. Only admins see
    /// the balance: a bot without admins never asks.
    pub fn read_balance(&mut self) {
        if self.config.bot.admins.is_empty() {
            return;
        }
        let fresh = clock::unix_now_ms() + 120_000; // the client renews a token in its last minute
        let token = self.gigachat.token_expires_at_ms().is_some_and(|at| at > fresh);
        let due = match self.balance_asked {
            None => true,
            Some(at) => token && at.elapsed() >= BALANCE_EVERY,
        };
        if !due {
            return;
        }
        self.balance_asked = Some(Instant::now());
        match self.gigachat.balance() {
            Ok(packages) => {
                self.balance = Some(owner::balance_text(packages.as_deref()));
                let model = &self.gigachat.model;
                let left = packages.iter().flatten().find(|(usage, _)| usage == model);
                if let Some(&(_, left)) = left {
                    self.store.begin();
                    self.warn_balance(Some(left));
                    self.commit();
                }
            }
            Err(err) => log::info!("{err}; /stats shows the last balance read"),
        }
    }

    /// Tells each admin privately that the model's package is low (`left`) or used up (None,
    /// a 402), when `owner::balance_warning` says one is due; remembered with the update
    /// (or the batch) being saved, so a restart does not repeat it.
    pub(super) fn warn_balance(&mut self, left: Option<i64>) {
        let (today, _) = clock::local_day(clock::unix_now());
        let warned = self.store.balance_warned();
        let Some((text, mark)) = owner::balance_warning(&self.config, left, &warned, &today) else {
            return;
        };
        for admin in self.config.bot.admins.clone() {
            if let Err(err) = self.courtesy(admin, None, &text, None) {
                log::info!("admin {admin}: {err}; the balance warning did not reach them");
            }
        }
        self.store.set_balance_warned(&mark);
    }
}
