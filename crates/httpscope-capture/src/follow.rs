//! Programs and libraries that appear after capture started: the processes the kernel
//! reports (exec, library loads) are inspected on a thread of their own, so reading a
//! large executable never holds up the event reader; the reader attaches what it finds.

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::tls::{self, FileId, TlsTarget};

/// A reported process: (tgid, it exec'd, when it was reported).
type Request = (u32, bool, Instant);

/// The inspection thread; it ends when this is dropped.
pub struct Follower {
    requests: Sender<Request>,
    found: Receiver<(TlsTarget, Instant)>,
}

impl Follower {
    /// Starts the thread; `seen` are the files already hooked or looked at.
    pub fn start(mut seen: HashSet<FileId>) -> Self {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (report, found) = mpsc::channel();
        std::thread::spawn(move || {
            for (tgid, exec, reported) in incoming {
                let executable = if exec {
                    tls::executable_of(tgid, &mut seen).and_then(|p| tls::classify_executable(&p))
                } else {
                    None
                };
                for target in executable
                    .into_iter()
                    .chain(tls::libraries_of(tgid, &mut seen))
                {
                    if report.send((target, reported)).is_err() {
                        return;
                    }
                }
            }
        });
        Self { requests, found }
    }

    /// Process `tgid` exec'd (`exec`) or changed its libraries.
    pub fn report(&self, tgid: u32, exec: bool) {
        let _ = self.requests.send((tgid, exec, Instant::now()));
    }

    /// Targets found since the last call, with the time since their process was reported.
    pub fn found(&self) -> Vec<(TlsTarget, Duration)> {
        self.found
            .try_iter()
            .map(|(target, reported)| (target, reported.elapsed()))
            .collect()
    }
}
