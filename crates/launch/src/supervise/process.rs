//! Starting, signalling and reaping worker processes.
//!
//! Each worker leads its own process group (`setpgid(0, 0)`), so stopping it signals the
//! whole tree a shell script may have forked, and a terminal's Ctrl-C reaches only the
//! launcher. Each worker also asks the kernel for SIGKILL when the launcher dies
//! (`PR_SET_PDEATHSIG`), checked against the launcher's pid right after so a launcher
//! that died during the fork is caught too; [`super::guard`] covers the grandchildren.
//! The launcher is a child subreaper, so orphaned grandchildren are reparented to it and
//! reaped instead of lingering as zombies.

use std::ffi::OsString;
use std::io::PipeReader;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Exit code.
    Code(i32),
    /// Killing signal.
    Signal(i32),
}

/// A started worker: its pid (also its process group id) and its output pipes.
pub struct Spawned {
    /// Process id and process group id.
    pub pid: i32,
    /// Standard output.
    pub stdout: PipeReader,
    /// Standard error.
    pub stderr: PipeReader,
}

/// Makes this process a child subreaper (Linux), so orphaned descendants come back to it.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Starts `argv` with `env` added to the launcher's environment, stdin closed.
pub fn spawn(argv: &[OsString], env: &[(String, String)]) -> std::io::Result<Spawned> {
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w);
    // SAFETY: getpid before fork; the closure only makes async-signal-safe syscalls.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher blocks SIGTERM/SIGINT/SIGHUP for its sigwait thread, and a
            // signal mask survives exec: without this, workers could never see the
            // SIGTERM that asks them to checkpoint and stop.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The launcher died between fork and prctl.
                libc::_exit(137);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // `cmd` (holding the write ends) drops here, so the pipes end when the worker does.
    drop(cmd);
    Ok(Spawned {
        pid: child.id() as i32,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Sends `sig` to the process group `pgid`; a group that is gone is not an error.
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill with a negative pid signals a process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Reaps one exited child without blocking, if any (any child: workers, the guard, and
/// orphans reparented to us).
pub fn reap_any() -> Option<(i32, Ended)> {
    let mut status = 0;
    // SAFETY: waitpid with a valid out pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let ended = if libc::WIFEXITED(status) {
        Ended::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ended::Signal(libc::WTERMSIG(status))
    } else {
        return Some((pid, Ended::Code(-1)));
    };
    Some((pid, ended))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::{Duration, Instant};

    fn wait_for(pid: i32) -> Ended {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                return if libc::WIFEXITED(status) {
                    Ended::Code(libc::WEXITSTATUS(status))
                } else {
                    Ended::Signal(libc::WTERMSIG(status))
                };
            }
            assert!(Instant::now() < deadline, "child {pid} did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn worker_leads_its_group_and_sees_its_env() {
        let argv: Vec<OsString> = ["sh", "-c", "echo $FOO $(ps -o pgid= $$); exit 3"]
            .iter()
            .map(Into::into)
            .collect();
        let mut s = spawn(&argv, &[("FOO".into(), "bar".into())]).unwrap();
        let mut out = String::new();
        s.stdout.read_to_string(&mut out).unwrap();
        let parts: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(parts[0], "bar");
        assert_eq!(parts[1], s.pid.to_string());
        assert_eq!(wait_for(s.pid), Ended::Code(3));
    }

    #[test]
    fn group_signal_reaches_the_tree() {
        let argv: Vec<OsString> = ["sh", "-c", "sleep 30 & wait"]
            .iter()
            .map(Into::into)
            .collect();
        let s = spawn(&argv, &[]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        signal_group(s.pid, libc::SIGKILL);
        assert_eq!(wait_for(s.pid), Ended::Signal(libc::SIGKILL));
    }
}
