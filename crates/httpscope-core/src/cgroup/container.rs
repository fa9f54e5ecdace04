//! The container and Kubernetes pod a cgroup path names, for the path
//! patterns of docker, podman (libpod), containerd (CRI and its `k8s.io`
//! namespace), cri-o and systemd slices, under cgroup v1 and v2 alike
//! (both hierarchies name a container's cgroup the same way).

/// What one cgroup path tells about the processes in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupInfo {
    /// The path below the hierarchy's mount point, starting with `/`.
    pub path: Box<str>,
    /// The container's full id, 64 lowercase hex digits.
    pub container_id: Option<Box<str>>,
    /// The Kubernetes pod's uid, in its usual dashed form.
    pub pod_uid: Option<Box<str>>,
}

impl CgroupInfo {
    pub fn parse(path: &str) -> CgroupInfo {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        CgroupInfo {
            path: path.into(),
            container_id: segments.iter().rev().find_map(|s| container_id(s)),
            pod_uid: segments.iter().rev().find_map(|s| pod_uid(s)),
        }
    }
}

/// Scope prefixes runtimes put before a container id (`docker-<id>.scope`).
const RUNTIME_PREFIXES: &[&str] = &[
    "docker-",
    "libpod-",
    "cri-containerd-",
    "crio-",
    "containerd-",
];
/// Prefixes of the runtimes' monitor processes' cgroups: not the container.
const MONITOR_PREFIXES: &[&str] = &["libpod-conmon-", "crio-conmon-"];

/// A container id in one path segment: `<64 hex>`, or `<runtime>-<64 hex>.scope`.
fn container_id(segment: &str) -> Option<Box<str>> {
    if MONITOR_PREFIXES.iter().any(|p| segment.starts_with(p)) {
        return None;
    }
    let name = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = RUNTIME_PREFIXES
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| id.to_ascii_lowercase().into())
}

/// A pod uid in one path segment: `pod<uid>` (cgroupfs) or
/// `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd).
fn pod_uid(segment: &str) -> Option<Box<str>> {
    let name = segment.strip_suffix(".slice").unwrap_or(segment);
    let (_, uid) = name.rsplit_once("pod")?;
    let uid = uid.replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let shape = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    (shape && hex).then(|| uid.to_ascii_lowercase().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5e08593ba1bf069a8cb5a38f05f5e3ec5ff387050a978d050adc2e120de20fea";
    const POD: &str = "0d4c2a3e-79a8-4d6f-9c9f-1f2b3c4d5e6f";

    fn parsed(path: &str) -> (Option<String>, Option<String>) {
        let info = CgroupInfo::parse(path);
        assert_eq!(&*info.path, path);
        (
            info.container_id.map(String::from),
            info.pod_uid.map(String::from),
        )
    }

    fn container(path: &str) {
        assert_eq!(parsed(path), (Some(ID.to_string()), None), "{path}");
    }

    fn pod_container(path: &str) {
        assert_eq!(
            parsed(path),
            (Some(ID.to_string()), Some(POD.to_string())),
            "{path}"
        );
    }

    #[test]
    fn docker() {
        // cgroup v2, systemd driver; cgroup v1 and v2, cgroupfs driver.
        container(&format!("/system.slice/docker-{ID}.scope"));
        container(&format!("/docker/{ID}"));
    }

    #[test]
    fn podman() {
        // cgroupfs manager (this VM, v1 lines and the hybrid's v2 line alike).
        container(&format!("/libpod_parent/libpod-{ID}"));
        // systemd manager, rootful and rootless, and the nested cgroup of a
        // systemd container.
        container(&format!("/machine.slice/libpod-{ID}.scope"));
        container(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
        ));
        container(&format!("/machine.slice/libpod-{ID}.scope/container"));
        // conmon, podman's monitor, is not in the container.
        assert_eq!(
            parsed(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            (None, None)
        );
    }

    #[test]
    fn containerd() {
        // CRI with the systemd driver, and the cgroupfs driver.
        let systemd_pod = POD.replace('-', "_");
        pod_container(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_pod}.slice/cri-containerd-{ID}.scope"
        ));
        pod_container(&format!("/kubepods/burstable/pod{POD}/{ID}"));
        pod_container(&format!("/kubepods/pod{POD}/{ID}"));
        // containerd's k8s.io namespace, cgroupfs, no pod in the path.
        container(&format!("/k8s.io/{ID}"));
    }

    #[test]
    fn cri_o() {
        let systemd_pod = POD.replace('-', "_");
        pod_container(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_pod}.slice/crio-{ID}.scope"
        ));
        pod_container(&format!(
            "/kubepods.slice/kubepods-pod{systemd_pod}.slice/crio-{ID}.scope"
        ));
        assert_eq!(
            parsed(&format!(
                "/kubepods.slice/kubepods-pod{systemd_pod}.slice/crio-conmon-{ID}.scope"
            )),
            (None, Some(POD.to_string()))
        );
    }

    #[test]
    fn hosts_and_near_misses_name_no_container() {
        for path in [
            "/",
            "/init.scope",
            "/system.slice/sshd.service",
            "/user.slice/user-0.slice/session-3.scope",
            "/process_api/116d39ee85aa6b64278c9510f56c7713",
            "/kubepods.slice/kubepods-podnotauid.slice",
        ] {
            assert_eq!(parsed(path), (None, None), "{path}");
        }
        // 63 and 65 hex digits, and a non-hex one.
        assert_eq!(parsed(&format!("/docker/{}", &ID[1..])), (None, None));
        assert_eq!(parsed(&format!("/docker/{ID}0")), (None, None));
        assert_eq!(parsed(&format!("/docker/{}g", &ID[1..])), (None, None));
    }

    #[test]
    fn upper_case_ids_are_lowered() {
        container(&format!("/docker/{}", ID.to_ascii_uppercase()));
    }
}
