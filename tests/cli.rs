//! The command line as users meet it: exit codes, messages, the key from standard input, and daemon
//! mode with its pid file.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts an `-e` end in front of the `-d` end at `d_source` (which fronts Redis) and checks that
/// redis-cli gets PONG through the pair.
fn assert_ping_through_an_e_end(dir: &std::path::Path, key: &std::path::Path, d_source: &str) {
    let e_source = format!("[127.0.0.1]:{}", free_port());
    let _e = SpipedCmd::new(dir, "e")
        .args(["-e", "-s", &e_source, "-t", d_source, "-k", key.to_str().unwrap()])
        .start();
    assert_eq!(redis_cli(&["-p", e_source.rsplit_once(':').unwrap().1, "ping"]).trim(), "PONG");
}

#[test]
fn version_exits_zero() {
    let out = run_spiped(&["-v"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn bad_arguments_print_a_reason_and_the_usage_and_exit_one() {
    for args in [
        &[][..],
        &["-e", "-d", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", "k"],
        &["-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2"],
        &["-e", "-s", "nonsense", "-t", "[127.0.0.1]:2", "-k", "k"],
        &["-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", "k", "-o", "0"],
        &["-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", "k", "-f", "-g"],
        &["-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", "k", "-Q"],
    ] {
        let out = run_spiped(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let mut lines = err.lines();
        assert!(lines.next().is_some_and(|l| l.starts_with("spiped: ")), "{args:?}: {err}");
        assert!(lines.next().is_some_and(|l| l.starts_with("usage: spiped {-e | -d}")), "{args:?}: {err}");
    }
}

/// Classic spiped accepts any key file, so a site migrating from it may have a short one: both ends
/// start with a warning that says why it is weak and where to read on, and serve.
#[test]
fn a_short_key_starts_with_a_warning_and_serves() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("short-key");
    let key = dir.join("short.key");
    std::fs::write(&key, b"hunter").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let redis = Redis::start(&dir, false);
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", redis.port);
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &d_source, "-t", &target, "-k", key.to_str().unwrap()])
        .start();
    let log = d.log_text();
    assert!(log.contains(&format!("key file {} holds only 6 bytes", key.display())), "{log}");
    assert!(log.contains("anyone who records the traffic can try keys offline"), "{log}");
    assert!(log.contains("docs/migrating.md"), "{log}");
    assert_ping_through_an_e_end(&dir, &key, &d_source);
}

/// `--protocol classic` starts on either end, with -f or -g; `-d --protocol native` too. (Whether
/// classic connections then work is for the interop tests.)
#[test]
fn every_protocol_choice_starts_on_both_ends() {
    let dir = scratch("protocols");
    let key = key_file(&dir, "k");
    let key = key.to_str().unwrap();
    for mode in ["-e", "-d"] {
        for extra in [
            &["--protocol", "classic"][..],
            &["--protocol", "classic", "-f"],
            &["--protocol", "classic", "-g"],
            &["--protocol", "native"],
            &["-f"],
            &["-g"],
        ] {
            let source = format!("[127.0.0.1]:{}", free_port());
            let name = format!("{}{}", &mode[1..], extra.join("").replace("--protocol", "-"));
            let daemon = SpipedCmd::new(&dir, &name)
                .args([mode, "-s", &source, "-t", "[127.0.0.1]:1", "-k", key])
                .args(extra)
                .start();
            assert!(std::net::TcpStream::connect(plain_addr(&source)).is_ok(), "{mode} {extra:?} listens");
            drop(daemon);
        }
    }
}

/// -f is accepted where no connection can be classic (spiped 1.6 scripts carry it) with a notice
/// that it changes nothing; where classic connections are possible it means what it says, silently.
#[test]
fn f_where_every_connection_is_native_starts_with_a_notice() {
    let dir = scratch("f-notice");
    let key = key_file(&dir, "k");
    let key = key.to_str().unwrap();
    let notice = "-f changes nothing here: native connections always have forward secrecy";
    for (name, args, noticed) in [
        ("e", &["-e", "-f"][..], true),
        ("e-native", &["-e", "-f", "--protocol", "native"], true),
        ("d-native", &["-d", "-f", "--protocol", "native"], true),
        ("e-classic", &["-e", "-f", "--protocol", "classic"], false),
        ("d-both", &["-d", "-f"], false),
        ("d-classic", &["-d", "-f", "--protocol", "classic"], false),
        ("e-g", &["-e", "-g"], false),
    ] {
        let source = format!("[127.0.0.1]:{}", free_port());
        let daemon = SpipedCmd::new(&dir, name)
            .args(args)
            .args(["-s", &source, "-t", "[127.0.0.1]:1", "-k", key])
            .start();
        assert_eq!(daemon.log_text().contains(notice), noticed, "{args:?}: {}", daemon.log_text());
    }
}

#[test]
fn a_missing_key_file_and_a_busy_port_exit_one() {
    let dir = scratch("startup-errors");
    let source = format!("[127.0.0.1]:{}", free_port());
    let out = run_spiped(&["-F", "-e", "-s", &source, "-t", "[127.0.0.1]:1", "-k", "/nonexistent/key"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/key"));

    let key = key_file(&dir, "k");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let source = format!("[127.0.0.1]:{}", busy.local_addr().unwrap().port());
    let out =
        run_spiped(&["-F", "-e", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot listen"), "{}", stderr(&out));
}

/// An OpenSSL configured to offer only FIPS algorithms (as on a system in FIPS mode) has no
/// ChaCha20-Poly1305: the daemon must say so and exit at start-up, not panic on every connection.
#[cfg(feature = "openssl")]
#[test]
fn an_openssl_without_chacha20_poly1305_stops_the_daemon_at_start_up() {
    let dir = scratch("fips-only");
    let key = key_file(&dir, "k");
    let conf = dir.join("openssl.cnf");
    std::fs::write(
        &conf,
        "openssl_conf = init\n[init]\nalg_section = algorithms\n[algorithms]\ndefault_properties = fips=yes\n",
    )
    .unwrap();
    let source = format!("[127.0.0.1]:{}", free_port());
    let out = std::process::Command::new(spiped_bin())
        .args(["-F", "-e", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
        .env("OPENSSL_CONF", &conf)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("cannot use the crypto library"), "{text}");
    assert!(text.contains("--features aws-lc"), "the way out is named: {text}");
}

#[test]
fn a_world_readable_key_starts_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("open-key");
    let key = key_file(&dir, "k");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let source = format!("[127.0.0.1]:{}", free_port());
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
        .start();
    assert!(d.log_text().contains("readable by others"), "{}", d.log_text());
}

#[test]
fn the_key_can_come_from_standard_input() {
    let dir = scratch("stdin-key");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", redis.port);
    let bytes = std::fs::read(&key).unwrap();
    let _d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &d_source, "-t", &target, "-k", "-"])
        .stdin(&bytes)
        .start();
    assert_ping_through_an_e_end(&dir, &key, &d_source);
}

#[test]
fn daemon_mode_writes_a_pid_file_serves_and_cleans_up() {
    let dir = scratch("daemon");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", redis.port);
    // Without -F (and with `-p dir/d.pid`): the parent returns only once the child is serving.
    let mut d = SpipedCmd::new(&dir, "d")
        .daemon()
        .args(["-d", "-s", &d_source, "-t", &target, "-k", key.to_str().unwrap()])
        .start();
    assert_eq!(d.child.try_wait().unwrap().and_then(|status| status.code()), Some(0), "the parent's exit");
    let pid_file = d.pid_file().expect("daemon mode");
    assert!(pid_file.exists());
    assert!(d.is_running(), "the daemon named in the pid file runs");

    assert_ping_through_an_e_end(&dir, &key, &d_source);

    d.signal(Signal::SIGTERM);
    eventually("the daemon removes its pid file", Duration::from_secs(20), || match pid_file.exists() {
        true => Err("the pid file outlived the daemon"),
        false => Ok(()),
    });
    d.wait_gone(Duration::from_secs(20));
}

#[test]
fn daemon_mode_reports_a_failure_to_start_in_its_exit_code() {
    let dir = scratch("daemon-fail");
    let key = key_file(&dir, "k");
    let pid_file = dir.join("d.pid");
    let source = format!("[127.0.0.1]:{}", free_port());
    let (key, pid) = (key.to_str().unwrap(), pid_file.to_str().unwrap());
    let args = ["-d", "-s", &source, "-t", "[127.0.0.1]:2", "-k", key, "-p", pid, "-u", "no-such-user-here"];
    let out = run_spiped(&args, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such user"), "{}", stderr(&out));
    assert!(!pid_file.exists(), "a daemon that failed to start leaves no pid file");
}

#[test]
fn the_default_pid_file_is_named_after_the_source() {
    let dir = scratch("default-pid");
    let key = key_file(&dir, "k");
    let source = dir.join("listen.sock");
    let pid_file = dir.join("listen.sock.pid");
    let mut d = SpipedCmd::new(&dir, "d")
        .daemon_with_pid_file_at(&pid_file)
        .args(["-d", "-s", source.to_str().unwrap(), "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
        .start();
    assert_eq!(d.child.try_wait().unwrap().and_then(|status| status.code()), Some(0), "the parent's exit");
    d.signal(Signal::SIGTERM);
    eventually("the daemon removes its pid file and socket", Duration::from_secs(20), || {
        match pid_file.exists() || source.exists() {
            true => Err("pid file or socket left behind"),
            false => Ok(()),
        }
    });
}

#[test]
fn syslog_receives_the_daemons_warnings() {
    let dir = scratch("syslog");
    let key = key_file(&dir, "k");
    let log_socket = dir.join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&log_socket).unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let source = format!("[127.0.0.1]:{}", free_port());
    let mut d = SpipedCmd::new(&dir, "d")
        .daemon()
        .log_level(None)
        .args(["-d", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap(), "--syslog"])
        .env("SPIPED_SYSLOG_SOCKET", &log_socket)
        .start();
    assert_eq!(d.child.try_wait().unwrap().and_then(|status| status.code()), Some(0), "the parent's exit");
    let pid = d.pid();

    // Enough garbage for a whole classic handshake (nonce, y and its MAC): the -d end, which accepts
    // both protocols, takes anything but the native preamble for classic spiped, and refuses it on
    // the MAC at once rather than at the handshake timeout.
    let mut conn = std::net::TcpStream::connect(plain_addr(&source)).unwrap();
    std::io::Write::write_all(&mut conn, &b"not the protocol at all ".repeat(16)).unwrap();
    let _ = read_until_closed(&mut conn);
    let mut messages = Vec::new();
    let mut buf = [0u8; 2048];
    while !messages.iter().any(|m: &String| m.contains("handshake failed")) {
        let n = syslog.recv(&mut buf).expect("a syslog message arrives");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let warning = messages.iter().find(|m| m.contains("handshake failed")).unwrap();
    assert!(
        warning.starts_with(&format!("<28>spiped[{pid}]: ")),
        "daemon.warning priority and tag: {warning}"
    );
    d.signal(Signal::SIGTERM);
}

#[test]
fn with_d_the_daemon_forks_first_and_still_reports_when_it_listens() {
    let dir = scratch("wait-dns");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("localhost:{}", redis.port);
    // Not waiting for READY=1: what is checked is that the parent's exit alone means it listens.
    let mut d = SpipedCmd::new(&dir, "d")
        .daemon()
        .skip_ready()
        .args(["-D", "-d", "-s", &d_source, "-t", &target, "-k", key.to_str().unwrap()])
        .start();
    assert_eq!(d.child.try_wait().unwrap().and_then(|status| status.code()), Some(0), "the parent's exit");
    // No retry: the parent returned only once the child was listening.
    assert!(std::net::TcpStream::connect(plain_addr(&d_source)).is_ok(), "listening when the parent exits");
    assert_ping_through_an_e_end(&dir, &key, &d_source);
    d.signal(Signal::SIGTERM);
}
