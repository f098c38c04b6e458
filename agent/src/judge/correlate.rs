//! Linking listeners, processes and persistence items: which launchd job or
//! login item started the process that holds a socket. A listener started
//! by persistence is a helper (docs/design.md §2, criterion 3), and a
//! persistence item is judged by what its program does when it runs.

use std::path::{Path, PathBuf};

use super::Observations;
use super::heuristics::{is_interpreter, script_arg};
use crate::model::{PersistenceItem, PersistenceKind, ProcessIdentity};

/// One persistence item linked to a listener, with how we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub item: usize,
    pub how: String,
}

/// All links of one observation pass, by index into `Observations`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Links {
    /// Per listener: the items that start it, ordered by item path.
    pub listener_items: Vec<Vec<Link>>,
    /// Per item: the listeners it starts.
    pub item_listeners: Vec<Vec<usize>>,
    /// Per item: pids of observed processes it started.
    pub item_pids: Vec<Vec<u32>>,
}

/// A persistence item in words: `login item "ZoomOpener" (/path)`.
pub(crate) fn describe_item(item: &PersistenceItem) -> String {
    let kind = match item.kind {
        PersistenceKind::LaunchAgent => "LaunchAgent",
        PersistenceKind::LaunchDaemon => "LaunchDaemon",
        PersistenceKind::LoginItem => "login item",
    };
    match &item.label {
        Some(label) => format!("{kind} {label:?} ({})", item.path.display()),
        None => format!("{kind} {}", item.path.display()),
    }
}

/// macOS reports `/private/tmp/x` for a program a plist names `/tmp/x`
/// (and likewise `/var`, `/etc`), and its volumes are case-insensitive by
/// default: compare in that light.
fn same_path(a: &Path, b: &Path) -> bool {
    fn norm(p: &Path) -> PathBuf {
        for short in ["tmp", "var", "etc"] {
            let long = Path::new("/private").join(short);
            if let Ok(rest) = p.strip_prefix(&long) {
                return Path::new("/").join(short).join(rest);
            }
        }
        p.to_path_buf()
    }
    let (a, b) = (norm(a), norm(b));
    a == b
        || a.to_string_lossy()
            .eq_ignore_ascii_case(&b.to_string_lossy())
}

/// Did `item` start process `p` itself — by its program and arguments, or
/// by launchd socket activation of `port` (launchd runs the item's own
/// program on demand)? Not through a parent: that is a link for "is it a
/// helper", not for "whose code does it run".
pub(crate) fn starts_directly(item: &PersistenceItem, p: &ProcessIdentity, port: u16) -> bool {
    if starts_process(item, p).is_some() {
        return true;
    }
    let port = port.to_string();
    item.sockets
        .iter()
        .any(|s| s.service.as_deref() == Some(port.as_str()))
        && item
            .program
            .as_deref()
            .zip(p.path.as_deref())
            .is_some_and(|(a, b)| same_path(a, b))
}

/// How `item` started process `p`, if it did.
pub(crate) fn starts_process(item: &PersistenceItem, p: &ProcessIdentity) -> Option<String> {
    let exe = p.path.as_deref();
    if let (Some(program), Some(exe)) = (item.program.as_deref(), exe)
        && same_path(program, exe)
    {
        // `/usr/bin/python3` runs every Python script on the machine:
        // for an interpreter the arguments must agree too.
        let argv_agree = item.args.len() <= 1
            || (p.args.len() == item.args.len() && p.args[1..] == item.args[1..]);
        if !is_interpreter(exe) || argv_agree {
            return Some(format!("its program is {}", program.display()));
        }
    }
    // The plist names `/usr/bin/python3` or `/bin/sh`, the kernel reports
    // the interpreter that really runs (the Command Line Tools' Python, the
    // shell `/bin/sh` hands over to): two interpreters given the same
    // script, or the same inline code, are the same job.
    if let (Some(program), Some(exe)) = (item.program.as_deref(), exe)
        && is_interpreter(program)
        && is_interpreter(exe)
    {
        match (script_arg(program, &item.args), script_arg(exe, &p.args)) {
            (Some(a), Some(b)) if same_path(a, b) => {
                return Some(format!(
                    "it runs the script {} that the item hands {}",
                    a.display(),
                    program.display()
                ));
            }
            (None, None)
                if item.args.len() > 1
                    && p.args.len() == item.args.len()
                    && p.args[1..] == item.args[1..] =>
            {
                return Some(format!(
                    "it runs the inline code the item hands {}",
                    program.display()
                ));
            }
            _ => {}
        }
    }
    // A login item names its app bundle; the process runs inside it.
    let bundles = [item.program.as_deref(), Some(item.path.as_path())];
    if let Some(exe) = exe {
        for bundle in bundles.into_iter().flatten() {
            let is_app = bundle.extension().is_some_and(|e| e == "app");
            if is_app && exe.starts_with(bundle) {
                return Some(format!("it runs inside {}", bundle.display()));
            }
        }
    }
    let label = item.label.as_deref().filter(|l| !l.is_empty())?;
    let bare = super::subject::strip_btm_type(label);
    if let Some(id) = p.signature.identifier.as_deref()
        && (id.eq_ignore_ascii_case(label) || id.eq_ignore_ascii_case(bare))
    {
        return Some(format!(
            "its label {label} is the process's signing identifier"
        ));
    }
    // BTM shows a login item by its app's name: compare with the process
    // name only for login items, where a label is a display name.
    if item.kind == PersistenceKind::LoginItem {
        let exe_name = exe.and_then(|e| e.file_name()).and_then(|n| n.to_str());
        let names = [Some(p.name.as_str()), exe_name];
        if names
            .into_iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(label))
        {
            return Some(format!("its name {label:?} is the process's name"));
        }
    }
    None
}

/// Link every listener to the persistence items that start it (directly,
/// through its parent process, or by launchd socket activation).
pub(crate) fn link(obs: &Observations) -> Links {
    let n_items = obs.persistence.len();
    let mut links = Links {
        listener_items: vec![Vec::new(); obs.listeners.len()],
        item_listeners: vec![Vec::new(); n_items],
        item_pids: vec![Vec::new(); n_items],
    };
    // Deterministic whatever order observe produced: by path, then label.
    let mut order: Vec<usize> = (0..n_items).collect();
    order.sort_by(|a, b| {
        let (x, y) = (&obs.persistence[*a], &obs.persistence[*b]);
        (&x.path, &x.label).cmp(&(&y.path, &y.label))
    });
    for (li, listener) in obs.listeners.iter().enumerate() {
        let owners: Vec<&ProcessIdentity> = listener
            .pids
            .iter()
            .filter_map(|pid| obs.processes.get(pid))
            .collect();
        for &ii in &order {
            let item = &obs.persistence[ii];
            // A user's plist cannot have started what runs as someone else
            // (root's cupsd, another user's server): such a link is a claim,
            // and honouring it would make their server this user's helper.
            if !owners
                .iter()
                .filter(|p| p.pid != 1)
                .all(|p| super::actor::could_start(item, p))
            {
                continue;
            }
            let mut how = None;
            for p in &owners {
                if let Some(h) = starts_process(item, p) {
                    how = Some(format!("started by {}: {h}", describe_item(item)));
                    links.item_pids[ii].push(p.pid);
                    break;
                }
                let parent = obs
                    .processes
                    .get(&p.ppid)
                    .filter(|q| q.pid != 1 && q.pid != p.pid);
                if let Some(q) = parent
                    && let Some(h) = starts_process(item, q)
                {
                    how = Some(format!(
                        "its parent {} (pid {}) was started by {}: {h}",
                        q.name,
                        q.pid,
                        describe_item(item)
                    ));
                    links.item_pids[ii].push(q.pid);
                    break;
                }
            }
            if how.is_none() {
                let port = listener.port.to_string();
                if item
                    .sockets
                    .iter()
                    .any(|s| s.service.as_deref() == Some(port.as_str()))
                {
                    how = Some(format!(
                        "launchd holds port {port} for {} (Sockets) and starts it on demand",
                        describe_item(item)
                    ));
                }
            }
            if let Some(how) = how {
                links.listener_items[li].push(Link { item: ii, how });
                links.item_listeners[ii].push(li);
            }
        }
    }
    for pids in &mut links.item_pids {
        pids.sort_unstable();
        pids.dedup();
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::testkit::*;

    #[test]
    fn program_bundle_label_and_name_links() {
        let opener = zoom_opener_process(501, 1);
        let item = zoom_login_item("/Users/ann");
        let how = starts_process(&item, &opener).expect("login item starts ZoomOpener");
        assert!(how.contains("ZoomOpener"), "{how}");

        // brew's plist names the `opt` symlink while the kernel reports the
        // resolved Cellar path: no link unless observe resolves symlinks.
        let nginx = brew_nginx_process(900);
        let agent = brew_nginx_agent();
        assert!(starts_process(&agent, &nginx).is_none());
        let resolved = process(901, 1, "/opt/homebrew/opt/nginx/bin/nginx", "nginx");
        assert!(starts_process(&agent, &resolved).is_some());
        assert!(starts_process(&agent, &opener).is_none());
        assert!(starts_process(&item, &nginx).is_none());
    }

    #[test]
    fn interpreter_programs_need_matching_arguments() {
        let mut agent = launch_agent(
            "/Users/ann/Library/LaunchAgents/com.example.sync.plist",
            "com.example.sync",
            "/usr/bin/python3",
        );
        agent.args = vec![
            "/usr/bin/python3".into(),
            "/Users/ann/.sync/server.py".into(),
        ];
        let mut other = process(700, 1, "/usr/bin/python3", "python3");
        other.args = vec!["python3".into(), "-m".into(), "http.server".into()];
        assert!(
            starts_process(&agent, &other).is_none(),
            "an unrelated python"
        );
        other.args = vec![
            "/usr/bin/python3".into(),
            "/Users/ann/.sync/server.py".into(),
        ];
        assert!(starts_process(&agent, &other).is_some());
    }

    #[test]
    fn a_plists_interpreter_and_the_one_that_runs_are_linked_by_what_they_run() {
        // launchd runs /usr/bin/python3, which execs the Command Line
        // Tools' Python; /bin/sh hands over to bash.
        let clt = "/Library/Developer/CommandLineTools/usr/bin/python3";
        let mut agent = launch_agent(
            "/Users/ann/Library/LaunchAgents/com.example.sync.plist",
            "com.example.sync",
            "/usr/bin/python3",
        );
        agent.args = vec![
            "/usr/bin/python3".into(),
            "/Users/ann/.sync/server.py".into(),
        ];
        let mut p = process(700, 1, clt, "python3");
        p.args = vec!["python3".into(), "/Users/ann/.sync/server.py".into()];
        let how = starts_process(&agent, &p).expect("same script");
        assert!(how.contains("/Users/ann/.sync/server.py"), "{how}");
        p.args = vec!["python3".into(), "/Users/ann/other.py".into()];
        assert!(starts_process(&agent, &p).is_none(), "another script");

        let mut sh = launch_agent("/Users/ann/Library/LaunchAgents/x.plist", "x", "/bin/sh");
        sh.args = vec!["/bin/sh".into(), "-c".into(), "exec nc -l 8080".into()];
        let mut bash = process(701, 1, "/bin/bash", "bash");
        bash.args = vec!["sh".into(), "-c".into(), "exec nc -l 8080".into()];
        assert!(starts_process(&sh, &bash).is_some_and(|h| h.contains("inline code")));
        bash.args = vec!["bash".into(), "-c".into(), "something else".into()];
        assert!(starts_process(&sh, &bash).is_none());
        // An interpreter is never linked to a program that is not one.
        let nginx = process(702, 1, "/usr/sbin/nginx", "nginx");
        assert!(starts_process(&sh, &nginx).is_none());
    }

    #[test]
    fn private_prefix_and_case_do_not_break_links() {
        let agent = launch_agent("/Library/LaunchAgents/x.plist", "x", "/tmp/Helper/run");
        let p = process(42, 1, "/private/tmp/helper/run", "run");
        assert!(starts_process(&agent, &p).is_some());
    }

    #[test]
    fn links_through_parent_and_socket_activation() {
        let mut obs = observations();
        let parent = process(800, 1, "/Users/ann/.acme/acmed", "acmed");
        let child = process(801, 800, "/Users/ann/.acme/worker", "worker");
        let agent = launch_agent(
            "/Users/ann/Library/LaunchAgents/com.acme.plist",
            "com.acme",
            "/Users/ann/.acme/acmed",
        );
        let mut socket_job = launch_agent(
            "/Library/LaunchDaemons/com.sock.plist",
            "com.sock",
            "/usr/local/libexec/sockd",
        );
        socket_job.sockets = vec![crate::model::LaunchdSocket {
            name: "Listeners".into(),
            service: Some("8765".into()),
            node: None,
        }];
        obs.processes.insert(800, parent);
        obs.processes.insert(801, child);
        obs.persistence = vec![socket_job, agent];
        obs.listeners = vec![loopback(4001, &[801]), loopback(8765, &[1])];
        let links = link(&obs);
        assert_eq!(links.listener_items[0].len(), 1);
        assert!(links.listener_items[0][0].how.contains("parent acmed"));
        assert_eq!(links.item_pids[1], vec![800]);
        assert!(links.listener_items[1][0].how.contains("Sockets"));
        assert_eq!(links.item_listeners[0], vec![1]);
    }
}
