//! `fhskit env run` end to end, with real namespaces, as root and as an unprivileged user (uid 65534 via setpriv).
//!
//! Each test builds a fixture env from package directories made in the test (the host's glibc copied into
//! Debian-shaped trees, plus `libfoo`/`libbar` and the probe program compiled from `tests/fixtures/fhsenv-*.c`) in a
//! world-readable temporary directory, then runs the probe inside. Contents:
//! - library only the env provides, the loader path, dlopen through our ld.so.cache
//! - exit codes, death by signal, exec mode, pid namespace
//! - Ctrl-C under a pseudo-terminal, orphan reaping, die-with-parent, SIGKILL of the monitor
//! - cwd preservation (also into a private /tmp), fake root, overlay mode
//! - Landlock: writes outside the allowed directories and TCP connects fail
//! - no mounts left behind
//!
//! A test is skipped, with the reason printed, only when the kernel forbids user namespaces for that user.

#[path = "../../fhsenv/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum User {
    Root,
    Nobody,
}

const USERS: [User; 2] = [User::Root, User::Nobody];

struct Fixture {
    tmp: tempfile::TempDir,
    fhskit: PathBuf,
    env: PathBuf,
    spec: PathBuf,
}

impl Fixture {
    /// Builds the fixture env with extra env.toml text; a copy of fhskit sits in the world-readable directory.
    fn new(extra: &str) -> Fixture {
        let tmp = common::world_readable_tempdir();
        let packages = common::make_packages(tmp.path());
        let spec = common::write_env_toml(tmp.path(), &packages, extra);
        let fhskit = tmp.path().join("fhskit");
        common::copy(Path::new(env!("CARGO_BIN_EXE_fhskit")), &fhskit);
        let env = tmp.path().join("env");
        let out =
            Command::new(&fhskit).args(["env", "build"]).arg(&spec).arg("-o").arg(&env).output().unwrap();
        assert!(out.status.success(), "env build failed: {}", String::from_utf8_lossy(&out.stderr));
        // A directory both users may write to.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        Fixture { tmp, fhskit, env, spec }
    }

    fn shared(&self) -> PathBuf {
        self.tmp.path().join("shared")
    }

    fn command(&self, user: User) -> Command {
        let mut cmd = match user {
            User::Root => Command::new(&self.fhskit),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&self.fhskit);
                c.env("HOME", "/nonexistent");
                c
            }
        };
        cmd.current_dir(self.tmp.path());
        cmd
    }

    /// `fhskit env run [flags] ENV -- args…`
    fn run(&self, user: User, flags: &[&str], args: &[&str]) -> Output {
        let mut cmd = self.command(user);
        cmd.args(["env", "run"]).args(flags).arg(&self.env).arg("--").args(args);
        cmd.output().unwrap()
    }
}

/// Returns a reason to skip when `user` cannot create user namespaces on this kernel.
fn userns_forbidden(user: User) -> Option<String> {
    let mut cmd = match user {
        User::Root => Command::new("unshare"),
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "unshare"]);
            c
        }
    };
    let out = cmd.args(["--user", "--map-current-user", "--mount", "true"]).output().ok()?;
    (!out.status.success()).then(|| {
        format!("user namespaces unavailable for {user:?}: {}", String::from_utf8_lossy(&out.stderr).trim())
    })
}

fn users() -> Vec<User> {
    USERS
        .into_iter()
        .filter(|u| match userns_forbidden(*u) {
            Some(reason) => {
                test_support::unmet(format!("{u:?}: {reason}"));
                false
            }
            None => true,
        })
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn runs_a_program_linked_against_a_library_only_the_env_provides() {
    let f = Fixture::new("");
    // Without the env the probe cannot start: libfoo.so.1 is nowhere on the host's search path.
    let probe = f.tmp.path().join("pkgs/app/usr/bin/fhsenv-probe");
    let outside = Command::new(&probe).arg("value").env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(!outside.status.success(), "{}", text(&outside));
    for user in users() {
        let out = f.run(user, &[], &["fhsenv-probe", "value"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "foo_value=42\n", "{user:?}: {}", text(&out));
        assert!(out.status.success());

        let out = f.run(user, &[], &["fhsenv-probe", "readlink", "/lib64/ld-linux-x86-64.so.2"]);
        let resolved = String::from_utf8_lossy(&out.stdout);
        assert!(
            resolved.trim_end().ends_with("pkgs/glibc/lib64/ld-linux-x86-64.so.2"),
            "{user:?}: {}",
            text(&out)
        );

        // dlopen of a library nothing links against, served by our cache (LD_DEBUG shows the cache lookup).
        let mut cmd = f.command(user);
        cmd.args(["env", "run"]).arg(&f.env).args(["--", "fhsenv-probe", "dlopen", "libbar.so.1"]);
        let out = cmd.env_remove("LD_LIBRARY_PATH").env("LD_DEBUG", "libs").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(String::from_utf8_lossy(&out.stdout).contains("dlopen ok"), "{user:?}: {}", text(&out));
        let lookup = stderr.split("find library=libbar.so.1").nth(1).unwrap_or("");
        assert!(lookup.contains("search cache=/etc/ld.so.cache"), "{user:?}: {}", text(&out));
        assert!(lookup.contains("trying file=/usr/lib/libbar.so.1"), "{user:?}: {}", text(&out));
    }
}

#[test]
fn exit_status_and_signal_death_pass_through() {
    let f = Fixture::new("");
    for user in users() {
        for code in [0, 7, 255] {
            let out = f.run(user, &[], &["fhsenv-probe", "exit", &code.to_string()]);
            assert_eq!(out.status.code(), Some(code), "{user:?}: {}", text(&out));
        }
        for sig in [libc::SIGTERM, libc::SIGKILL, libc::SIGUSR1] {
            let out = f.run(user, &[], &["fhsenv-probe", "kill", &sig.to_string()]);
            assert_eq!(out.status.signal(), Some(sig), "{user:?}: {}", text(&out));
        }
        let out = f.run(user, &["--exec"], &["fhsenv-probe", "exit", "9"]);
        assert_eq!(out.status.code(), Some(9), "exec mode {user:?}: {}", text(&out));
        let out = f.run(user, &[], &["no-such-program"]);
        assert_eq!(out.status.code(), Some(127), "{user:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("command not found"), "{}", text(&out));
    }
}

#[test]
fn pid_namespace_reaps_and_passes_status_through() {
    let f = Fixture::new("[unshare]\npid = true\n");
    for user in users() {
        let out = f.run(user, &[], &["fhsenv-probe", "orphan"]);
        assert_eq!(out.status.code(), Some(0), "{user:?}: {}", text(&out));
        let out = f.run(user, &[], &["fhsenv-probe", "exit", "5"]);
        assert_eq!(out.status.code(), Some(5), "{user:?}: {}", text(&out));
        let out = f.run(user, &[], &["fhsenv-probe", "kill", "15"]);
        assert_eq!(out.status.signal(), Some(15), "{user:?}: {}", text(&out));
    }
}

#[test]
fn orphans_are_reaped_without_a_pid_namespace() {
    let f = Fixture::new("");
    for user in users() {
        let out = f.run(user, &[], &["fhsenv-probe", "orphan"]);
        assert_eq!(out.status.code(), Some(0), "{user:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("orphan reaped"));
    }
}

#[test]
fn working_directory_is_preserved() {
    let f = Fixture::new("private_tmp = true\n");
    let work = f.tmp.path().join("work dir");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    for user in users() {
        let mut cmd = f.command(user);
        cmd.current_dir(&work).args(["env", "run"]).arg(&f.env).args(["--", "fhsenv-probe", "pwd"]);
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            work.to_str().unwrap(),
            "{user:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn fake_root_and_overlay_mode() {
    let f = Fixture::new("");
    for user in users() {
        let out = f.run(user, &["--fake-root"], &["fhsenv-probe", "uid"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{user:?}: {}", text(&out));
        let out = f.run(user, &[], &["fhsenv-probe", "uid"]);
        let expected = if user == User::Root { "0" } else { "65534" };
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected, "{user:?}: {}", text(&out));

        // Overlay mode: the env's programs and the host's /usr side by side.
        let out = f.run(user, &["--mode", "overlay"], &["fhsenv-probe", "readlink", "/usr/bin/setpriv"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "/usr/bin/setpriv",
            "{user:?}: {}",
            text(&out)
        );
        let out = f.run(user, &["--mode", "nixos"], &["fhsenv-probe", "readlink", "/usr/bin/setpriv"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("realpath failed"), "{user:?}: {}", text(&out));
    }
}

#[test]
fn landlock_denies_writes_outside_allowed_dirs_and_tcp_connect() {
    let f = Fixture::new("");
    let allowed = f.shared().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::set_permissions(&allowed, std::fs::Permissions::from_mode(0o777)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sandboxed = f.tmp.path().join("sandboxed.toml");
    let base = std::fs::read_to_string(&f.spec).unwrap();
    std::fs::write(
        &sandboxed,
        format!("{base}[sandbox]\nwritable = [{:?}]\nnetwork = \"none\"\n", allowed.display().to_string()),
    )
    .unwrap();
    let env = f.tmp.path().join("sandboxed-env");
    let out =
        Command::new(&f.fhskit).args(["env", "build"]).arg(&sandboxed).arg("-o").arg(&env).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let abi = fhsenv::sandbox::kernel_abi();
    for user in users() {
        let run = |args: &[&str]| {
            let mut cmd = f.command(user);
            cmd.args(["env", "run"]).arg(&env).arg("--").args(args);
            cmd.output().unwrap()
        };
        // Without the sandbox both work, so the denials below are the sandbox's doing.
        let open = f.run(user, &[], &["fhsenv-probe", "connect", &port]);
        assert!(String::from_utf8_lossy(&open.stdout).contains("connect ok"), "{user:?}: {}", text(&open));
        let outside = f.shared().join(format!("outside-{user:?}"));
        let open = f.run(user, &[], &["fhsenv-probe", "write", outside.to_str().unwrap()]);
        assert!(open.status.success(), "{user:?}: {}", text(&open));
        std::fs::remove_file(&outside).unwrap();

        if abi == 0 {
            test_support::unmet("the landlock assertions: the kernel has no landlock");
            continue;
        }
        let inside = allowed.join(format!("file-{user:?}"));
        let out = run(&["fhsenv-probe", "write", inside.to_str().unwrap()]);
        assert!(out.status.success(), "{user:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sandbox: fully enforced"),
            "{user:?}: {}",
            text(&out)
        );
        // Host paths are read-only mounts in a sandbox as well, so this write fails before Landlock sees it.
        let out = run(&["fhsenv-probe", "write", outside.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{user:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Read-only file system"),
            "{user:?}: {}",
            text(&out)
        );
        assert!(!outside.exists());
        // The env's own /etc is a writable tmpfs: there Landlock alone denies the write.
        let scratch = "/etc/fhskit-landlock-probe";
        assert!(f.run(user, &[], &["fhsenv-probe", "write", scratch]).status.success(), "{user:?}");
        let out = run(&["fhsenv-probe", "write", scratch]);
        assert_eq!(out.status.code(), Some(1), "{user:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Permission denied"),
            "{user:?}: {}",
            text(&out)
        );
        if abi >= 4 {
            let out = run(&["fhsenv-probe", "connect", &port]);
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("connect failed"),
                "{user:?}: {}",
                text(&out)
            );
        }
    }
    drop(listener);
}

#[test]
fn ctrl_c_under_a_pseudo_terminal_reaches_the_program_and_it_exits_normally() {
    let f = Fixture::new("");
    for user in users() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = pty.slave.as_raw_fd();
        let mut cmd = f.command(user);
        cmd.args(["env", "run"]).arg(&f.env).args(["--", "fhsenv-probe", "sigint"]);
        let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the child makes the pty its controlling terminal.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        drop(pty.slave);
        // Non-blocking, so a launcher that hangs or dies early fails the test instead of blocking it.
        let flags = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        let mut master = std::fs::File::from(pty.master);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&seen).contains("ready") {
            let open = drain(&mut master, &mut seen);
            assert!(
                open && Instant::now() < deadline,
                "{user:?}: no ready: {}",
                String::from_utf8_lossy(&seen)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        master.write_all(&[3]).unwrap(); // ^C
        let status = loop {
            drain(&mut master, &mut seen);
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{user:?}: fhskit did not exit after ^C: {}", String::from_utf8_lossy(&seen));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drain(&mut master, &mut seen);
        let seen = String::from_utf8_lossy(&seen);
        assert!(seen.contains("caught SIGINT"), "{user:?}: {seen}");
        assert_eq!(status.code(), Some(42), "{user:?}: {status:?} {seen}");
    }
}

/// Reads what a non-blocking pty master has; false once every slave fd is closed (the pty then returns EIO).
fn drain(master: &mut std::fs::File, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match master.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn die_with_parent_terminates_the_whole_tree() {
    let f = Fixture::new("");
    for user in users() {
        let marker = f.shared().join(format!("dwp-{user:?}"));
        let script = format!(
            "{} env run --kill-grace 1 {} -- fhsenv-probe term-wait {} & wait",
            f.fhskit.display(),
            f.env.display(),
            marker.display()
        );
        let mut cmd = match user {
            User::Root => Command::new("sh"),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"]);
                c
            }
        };
        let mut parent = cmd.arg("-c").arg(&script).stdout(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let pids: Vec<i32> = loop {
            let text = std::fs::read_to_string(&marker).unwrap_or_default();
            let pids: Vec<i32> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            if pids.len() == 2 {
                break pids;
            }
            assert!(Instant::now() < deadline, "{user:?}: probe did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        parent.kill().unwrap(); // SIGKILL: the shell cannot pass anything on; only die-with-parent helps
        parent.wait().unwrap();
        let gone = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err();
        while !(gone(pids[0]) && gone(pids[1])) {
            assert!(Instant::now() < deadline, "{user:?}: processes {pids:?} survived their parent");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            std::fs::read_to_string(&marker).unwrap().contains("term"),
            "{user:?}: the program got TERM first"
        );
    }
}

#[test]
fn env_toml_is_built_on_demand_and_nothing_is_left_mounted() {
    let f = Fixture::new("");
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    for user in users() {
        let cache = f.shared().join(format!("cache-{user:?}"));
        let mut cmd = f.command(user);
        cmd.env("XDG_CACHE_HOME", &cache).args(["env", "run"]).arg(&f.spec).args([
            "--",
            "fhsenv-probe",
            "value",
        ]);
        let out = cmd.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "foo_value=42\n", "{user:?}: {}", text(&out));
        assert!(cache.join("fhskit/envs").read_dir().unwrap().count() == 1, "built once into the cache");
    }
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    assert_eq!(mounts_before, mounts_after);
    assert!(!Path::new("/newroot").exists() && !Path::new("/oldroot").exists());
}

#[test]
fn malformed_env_toml_names_the_key_and_doctor_reports() {
    let tmp = common::world_readable_tempdir();
    let fhskit = env!("CARGO_BIN_EXE_fhskit");
    let cases = [
        ("typo.toml", "name = \"x\"\npakages = [\"/nonexistent\"]\n", "line 2: unknown field `pakages`"),
        ("type.toml", "name = \"x\"\n[unshare]\npid = \"yes\"\n", "line 3: key `unshare.pid`: invalid type"),
        ("syntax.toml", "name = \"x\"\npackages = [\n", "invalid env spec"),
        ("missing.toml", "name = \"x\"\npackages = [\"/nonexistent-package\"]\n", "/nonexistent-package"),
    ];
    for (file, toml, want) in cases {
        let path = tmp.path().join(file);
        std::fs::write(&path, toml).unwrap();
        for sub in ["build", "run"] {
            let out = Command::new(fhskit).args(["env", sub]).arg(&path).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{file} {sub}: {}", text(&out));
            assert!(
                err.starts_with("error: ") && err.contains(file) && err.contains(want),
                "{file} {sub}: {err}"
            );
        }
    }
    // Nothing was built for the broken specs.
    assert!(!tmp.path().read_dir().unwrap().flatten().any(|e| e.path().is_dir()));

    let out = Command::new(fhskit).args(["env", "doctor"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    for check in ["max_user_namespaces", "user namespace probe", "landlock", "nesting"] {
        assert!(report.contains(check), "{report}");
    }
    assert!(out.status.success(), "{report}");
}

/// Every process below `pid` (host pids, from /proc/PID/task/TID/children).
fn descendants(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut queue = vec![pid as i32];
    while let Some(p) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in text.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                out.push(child);
                queue.push(child);
            }
        }
    }
    out
}

#[test]
fn sigkill_of_the_monitor_leaves_no_survivor() {
    for (name, extra) in [("plain", ""), ("pid-namespace", "[unshare]\npid = true\n")] {
        let f = Fixture::new(extra);
        for user in users() {
            let marker = f.shared().join(format!("kill-{name}-{user:?}"));
            let mut cmd = f.command(user);
            cmd.args(["env", "run", "--kill-grace", "1"]).arg(&f.env).arg("--");
            cmd.args(["fhsenv-probe", "term-wait"]).arg(&marker).stdout(Stdio::null());
            let mut monitor = cmd.spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            // The probe and its sleeping child are up once the marker names two pids.
            while std::fs::read_to_string(&marker).unwrap_or_default().split_whitespace().count() < 2 {
                assert!(Instant::now() < deadline, "{name} {user:?}: the probe did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            let tree = descendants(monitor.id());
            assert!(tree.len() >= 3, "{name} {user:?}: keeper, probe and its child expected: {tree:?}");
            monitor.kill().unwrap(); // SIGKILL: the monitor can do nothing; the tree must end by itself
            monitor.wait().unwrap();
            let alive = |pid: &i32| {
                // A zombie is dead; it only waits for its (new) parent to reap it.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
                })
            };
            loop {
                let survivors: Vec<i32> = tree.iter().copied().filter(alive).collect();
                if survivors.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    // Survivors would hold the test's output pipe open forever.
                    for pid in &survivors {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(*pid),
                            nix::sys::signal::SIGKILL,
                        );
                    }
                    panic!("{name} {user:?}: processes {survivors:?} of {tree:?} survived the monitor");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Builds an env of `spec` (env.toml text) at `dir/name` with the fixture's fhskit.
fn build_env(f: &Fixture, name: &str, spec: &str) -> PathBuf {
    let toml = f.tmp.path().join(format!("{name}.toml"));
    std::fs::write(&toml, spec).unwrap();
    let env = f.tmp.path().join(name);
    let out = Command::new(&f.fhskit).args(["env", "build"]).arg(&toml).arg("-o").arg(&env).output().unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out));
    env
}

#[test]
fn overlay_mode_keeps_every_host_path_the_env_does_not_provide() {
    let f = Fixture::new("");
    // A host directory below /usr/share with files in it, which a data-only package adds one file to.
    let Some((share, host_file)) =
        ["common-licenses", "misc", "zoneinfo", "perl5", "doc"].iter().find_map(|name| {
            let dir = Path::new("/usr/share").join(name);
            let first = std::fs::read_dir(&dir).ok()?.flatten().next()?.file_name();
            Some((name.to_string(), first.to_string_lossy().into_owned()))
        })
    else {
        test_support::unmet("a directory with files below /usr/share");
        return;
    };
    let data = f.tmp.path().join("pkgs/data");
    std::fs::create_dir_all(data.join("usr/share").join(&share)).unwrap();
    std::fs::write(data.join("usr/share").join(&share).join("fhskit-overlay-data"), "data\n").unwrap();
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let mut envs = vec![(
        "no libraries",
        build_env(&f, "zero", &format!("packages = [{}]\nmode = \"overlay\"\n", quote(&data))),
    )];
    let multi = f.tmp.path().join("pkgs/multi");
    if multi.exists() {
        let spec = format!("multi_packages = [{}]\nmode = \"overlay\"\n", quote(&multi));
        envs.push(("only 32-bit libraries", build_env(&f, "lib32", &spec)));
    } else {
        test_support::unmet("32-bit libraries (/usr/lib32/libc.so.6) for the env of only 32-bit libraries");
    }
    envs.push(("a full closure", f.env.clone()));
    // Host programs (through the host's loader path), host files beside the env's, and host configuration.
    let script = format!(
        "set -e; /usr/bin/setpriv --help >/dev/null; test -e /usr/share/{share}/{host_file}; \
         ls -d /lib64/ld-linux-x86-64.so.2 /usr/lib64/ld-linux-x86-64.so.2 /usr/lib/x86_64-linux-gnu/libc.so.6; \
         if [ -e /.host-etc/alternatives ]; then test -e /etc/alternatives; fi; echo host ok"
    );
    for user in users() {
        for (what, env) in &envs {
            let mut cmd = f.command(user);
            cmd.args(["env", "run", "--mode", "overlay"]).arg(env).args(["--", "/bin/sh", "-c", &script]);
            let out = cmd.output().unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("host ok"),
                "{what} {user:?}: {}",
                text(&out)
            );
        }
        let run = |env: &Path, args: &[&str]| {
            let mut cmd = f.command(user);
            cmd.args(["env", "run", "--mode", "overlay"]).arg(env).arg("--").args(args);
            cmd.output().unwrap()
        };
        // What each env provides is there too.
        let out = run(&envs[0].1, &["cat", &format!("/usr/share/{share}/fhskit-overlay-data")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "data\n", "{user:?}: {}", text(&out));
        if multi.exists() {
            let out = run(
                &envs[1].1,
                &["/bin/sh", "-c", "test -e /usr/lib32/libfoo.so.1 && test -e /lib/ld-linux.so.2 && echo ok"],
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{user:?}: {}", text(&out));
        }
        let out = run(&f.env, &["fhsenv-probe", "value"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "foo_value=42\n", "{user:?}: {}", text(&out));
    }
}

#[test]
fn a_sandbox_keeps_the_host_read_only_even_for_root_and_hides_secrets() {
    let f = Fixture::new("");
    let base = std::fs::read_to_string(&f.spec).unwrap();
    let allowed = f.shared().join("sandbox-allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::set_permissions(&allowed, std::fs::Permissions::from_mode(0o777)).unwrap();
    let hidden = f.shared().join("hidden-file");
    std::fs::write(&hidden, "not for the sandbox\n").unwrap();
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o644)).unwrap();
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let sandbox = format!("{base}[sandbox]\nwritable = [{}]\nhide = [{}]\n", quote(&allowed), quote(&hidden));
    let sandboxed = build_env(&f, "sandboxed", &sandbox);
    let reading = build_env(&f, "reading", &format!("{sandbox}read = [\"/etc/shadow\"]\n"));
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    for user in users() {
        let run = |env: &Path, args: &[&str]| {
            let mut cmd = f.command(user);
            cmd.args(["env", "run"]).arg(env).arg("--").args(args);
            cmd.output().unwrap()
        };
        // A mode-600 host file of the caller, outside the writable directory.
        let file = f.shared().join(format!("private-{user:?}"));
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        if user == User::Nobody {
            nix::unistd::chown(&file, Some(65534.into()), Some(65534.into())).unwrap();
        }
        let path = file.to_str().unwrap();
        let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        let owner = || std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&file).unwrap());
        // Without a sandbox the env changes host files as the caller could.
        assert_eq!(stdout(&f.run(user, &[], &["fhsenv-probe", "chmod", path])), "chmod ok", "{user:?}");
        assert_eq!(mode(), 0o666);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

        let out = run(&sandboxed, &["fhsenv-probe", "chmod", path]);
        assert_eq!(stdout(&out), "chmod failed: Read-only file system", "{user:?}: {}", text(&out));
        assert_eq!(mode(), 0o600, "{user:?}");
        if user == User::Root {
            let out = run(&sandboxed, &["fhsenv-probe", "chown", path]);
            assert!(stdout(&out).starts_with("chown failed"), "{}", text(&out));
            assert_eq!(owner(), 0);
        }
        // The writable directory is writable; a hidden file reads as empty.
        let inside = allowed.join(format!("made-{user:?}"));
        let out = run(&sandboxed, &["fhsenv-probe", "write", inside.to_str().unwrap()]);
        assert!(out.status.success() && inside.exists(), "{user:?}: {}", text(&out));
        let out = run(&sandboxed, &["fhsenv-probe", "read", hidden.to_str().unwrap()]);
        assert_eq!(stdout(&out), "read 0 bytes", "{user:?}: {}", text(&out));

        if user == User::Root {
            // Secrets: root reads /etc/shadow (also at /.host-etc) and /root without a sandbox, not with one,
            // unless the `read` list names them.
            for shadow in ["/etc/shadow", "/.host-etc/shadow"] {
                let out = f.run(user, &[], &["fhsenv-probe", "read", shadow]);
                assert!(!stdout(&out).starts_with("read 0 ") && out.status.success(), "{}", text(&out));
                let out = run(&sandboxed, &["fhsenv-probe", "read", shadow]);
                assert_eq!(stdout(&out), "read 0 bytes", "{shadow}: {}", text(&out));
                let out = run(&reading, &["fhsenv-probe", "read", shadow]);
                assert!(!stdout(&out).starts_with("read 0 ") && out.status.success(), "{}", text(&out));
            }
            if std::fs::read_dir("/root").is_ok_and(|mut d| d.next().is_some()) {
                let out = f.run(user, &[], &["fhsenv-probe", "count", "/root"]);
                assert_ne!(stdout(&out), "0 entries", "{}", text(&out));
                let out = run(&sandboxed, &["fhsenv-probe", "count", "/root"]);
                assert_eq!(stdout(&out), "0 entries", "{}", text(&out));
            }
        }
    }
}
