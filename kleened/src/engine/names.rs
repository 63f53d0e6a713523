//! The rules for names clients give (containers, volumes, networks) and for host interface
//! names: what may pass into dataset names, paths, packet-filter rules, tables and messages.

/// The longest name, in bytes (a container's after its optional leading `/`).
pub const NAME_MAX: usize = 255;

/// Container names: `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`, at most [`NAME_MAX`] bytes.
pub fn valid_container_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && (2..=NAME_MAX).contains(&name.len())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Why `name` is not a valid container name, in the reference's words where it has them.
pub fn invalid_container_name(name: &str) -> String {
    if name.trim_start_matches('/').len() > NAME_MAX {
        format!("container name is longer than {NAME_MAX} bytes")
    } else {
        format!("{name} does not match /?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
    }
}

/// Whether `name` may name a volume: letters, digits, `_`, `.` and `-`, starting with a letter or
/// digit, no `..`, at most 255 bytes. It becomes a dataset name and a directory: nothing in it
/// may climb or reach elsewhere.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= NAME_MAX
        && !name.contains("..")
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Why `name` is not a valid volume name.
pub fn invalid_volume_name(name: &str) -> String {
    format!(
        "invalid volume name '{name}': use letters, digits, '_', '.' and '-', starting with a \
         letter or digit, without '..', at most {NAME_MAX} bytes"
    )
}

/// Network names: a letter or digit, then letters, digits, `_`, `.` and `-`, at most
/// [`NAME_MAX`] bytes, as volume names (without the `..` rule, as a
/// network name is no path). They are shown in tables and messages and looked up next to IDs, so
/// nothing else may pass.
pub fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= NAME_MAX
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Interface names: what Linux and FreeBSD both accept, at most 15 bytes (they are written into
/// packet-filter rules, so nothing else may pass).
pub fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !name.starts_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_reference_pattern() {
        for good in ["web", "/web", "a1", "my_app.v2-x"] {
            assert!(valid_container_name(good), "{good}");
        }
        for bad in ["a", "-web", "we b", "", "/", "x/y"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }

    #[test]
    fn volume_names_cannot_climb_or_reach_elsewhere() {
        for good in ["data", "d", "my_vol.v2-x", "0"] {
            assert!(valid_volume_name(good), "{good}");
        }
        let long = "v".repeat(256);
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-flag",
            "a..b",
            "we b",
            "x\0",
            long.as_str(),
        ] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
        assert!(valid_volume_name(&"v".repeat(255)));
    }

    #[test]
    fn network_names_are_plain() {
        for good in ["web", "x", "br-0", "a.b_c", "0net"] {
            assert!(valid_network_name(good), "{good}");
        }
        for bad in [
            "",
            "-web",
            ".web",
            "a b",
            "a/b",
            "web\n",
            "we$b",
            "wéb",
            &"a".repeat(256),
        ] {
            assert!(!valid_network_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn interface_names_are_short_and_plain() {
        for good in ["kleene0", "br-web", "a.b_c"] {
            assert!(valid_interface(good), "{good}");
        }
        for bad in ["", "sixteen-chars-xx", "a/b", "-x", "a b", "eth0:1"] {
            assert!(!valid_interface(bad), "{bad}");
        }
    }
}
