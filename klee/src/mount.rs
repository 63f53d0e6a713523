//! The `-m/--mount` syntax of `run` and `create`, turned into the API's `MountPointConfig`.
//!
//! The form is the Python client's, `SOURCE:DESTINATION[:ro|rw]`: a source starting with `/` is a
//! host file or directory (a `nullfs` mount), anything else the name of a volume; `ro` mounts
//! read-only, `rw` or nothing read-write. The options are a comma-separated list, which may also
//! name `suid` (setuid bits take effect; mounts are `nosuid` otherwise) and `dev` (device nodes
//! open; mounts are `nodev` otherwise). The Python client sends whatever it splits out; here a
//! specification that cannot mean one mount is a usage error naming what is wrong, so nothing
//! reaches the daemon.

use kleene_api::{MountPointConfig, MountPointType};

/// The form, as error messages repeat it.
const FORM: &str = "SOURCE:DESTINATION[:OPTIONS]";

/// Why a `--mount` specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// No `:` at all.
    #[error("no destination: expected {FORM}")]
    NoDestination,
    /// More than two `:`.
    #[error("too many ':': expected {FORM}")]
    Shape,
    /// `:/data`.
    #[error("the source is empty: expected {FORM}")]
    EmptySource,
    /// `data:` or `data::ro`.
    #[error("the destination is empty: expected {FORM}")]
    EmptyDestination,
    /// `data:/data:rx`.
    #[error("unknown mount option '{0}' (ro, rw, suid or dev, separated by commas)")]
    Mode(String),
    /// `data:srv`: a path inside the container is absolute.
    #[error("the destination '{0}' is not an absolute path in the container")]
    RelativeDestination(String),
    /// `./data:/data`: neither a host path (those start with `/`) nor a volume name.
    #[error(
        "the source '{0}' is neither an absolute host path nor a volume name (which has no '/')"
    )]
    RelativeSource(String),
}

/// Parses one `--mount` value.
pub fn parse(spec: &str) -> Result<MountPointConfig, MountError> {
    let (source, destination, options) = match spec.split(':').collect::<Vec<_>>()[..] {
        [_] => return Err(MountError::NoDestination),
        [source, destination] => (source, destination, None),
        [source, destination, options] => (source, destination, Some(options)),
        _ => return Err(MountError::Shape),
    };
    let (mut read_only, mut setuid, mut devices) = (false, false, false);
    for option in options.map(|o| o.split(',')).into_iter().flatten() {
        match option {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "suid" => setuid = true,
            "dev" => devices = true,
            other => return Err(MountError::Mode(other.to_owned())),
        }
    }
    if source.is_empty() {
        return Err(MountError::EmptySource);
    }
    if destination.is_empty() {
        return Err(MountError::EmptyDestination);
    }
    if !destination.starts_with('/') {
        return Err(MountError::RelativeDestination(destination.to_owned()));
    }
    let kind = if source.starts_with('/') {
        MountPointType::Nullfs
    } else if source.contains('/') {
        return Err(MountError::RelativeSource(source.to_owned()));
    } else {
        MountPointType::Volume
    };
    Ok(MountPointConfig {
        kind,
        destination: destination.to_owned(),
        source: source.to_owned(),
        read_only,
        setuid,
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: MountPointType, source: &str, destination: &str, ro: bool) -> MountPointConfig {
        MountPointConfig {
            kind,
            destination: destination.into(),
            source: source.into(),
            read_only: ro,
            setuid: false,
            devices: false,
        }
    }

    #[test]
    fn a_name_is_a_volume_mounted_read_write_unless_ro() {
        let volume = MountPointType::Volume;
        assert_eq!(
            parse("data:/data"),
            Ok(mount(volume, "data", "/data", false))
        );
        assert_eq!(
            parse("data:/data:rw"),
            Ok(mount(volume, "data", "/data", false))
        );
        assert_eq!(
            parse("data:/data:ro"),
            Ok(mount(volume, "data", "/data", true))
        );
        assert_eq!(
            parse("my-vol_1.2:/var/db/x"),
            Ok(mount(volume, "my-vol_1.2", "/var/db/x", false))
        );
    }

    #[test]
    fn an_absolute_source_is_a_host_path_mounted_with_nullfs() {
        let nullfs = MountPointType::Nullfs;
        assert_eq!(
            parse("/srv/www:/usr/local/www"),
            Ok(mount(nullfs, "/srv/www", "/usr/local/www", false))
        );
        assert_eq!(
            parse("/etc/hosts:/etc/hosts:ro"),
            Ok(mount(nullfs, "/etc/hosts", "/etc/hosts", true))
        );
        assert_eq!(
            parse("/tmp:/mnt:rw"),
            Ok(mount(nullfs, "/tmp", "/mnt", false))
        );
        assert_eq!(parse("/:/host:ro"), Ok(mount(nullfs, "/", "/host", true)));
    }

    #[test]
    fn setuid_bits_and_devices_are_off_unless_asked_for() {
        let nullfs = MountPointType::Nullfs;
        let plain = parse("/srv/bin:/opt/bin").unwrap();
        assert!(!plain.setuid && !plain.devices);
        let lifted = parse("/srv/bin:/opt/bin:ro,suid").unwrap();
        assert_eq!(
            lifted,
            MountPointConfig {
                setuid: true,
                ..mount(nullfs, "/srv/bin", "/opt/bin", true)
            }
        );
        let devices = parse("/dev/dri:/dev/dri:dev,rw").unwrap();
        assert!(devices.devices && !devices.setuid && !devices.read_only);
        // Only asked-for options go on the wire, so the Python client's form is unchanged.
        assert_eq!(
            serde_json::to_value(&lifted).unwrap(),
            serde_json::json!({"type": "nullfs", "destination": "/opt/bin", "source": "/srv/bin",
                               "read_only": true, "setuid": true})
        );
        assert_eq!(
            parse("/a:/b:ro,setuid"),
            Err(MountError::Mode("setuid".into()))
        );
    }

    #[test]
    fn the_wire_form_is_the_python_clients() {
        assert_eq!(
            serde_json::to_value(parse("/tmp:/mnt:ro").unwrap()).unwrap(),
            serde_json::json!({"type": "nullfs", "destination": "/mnt", "source": "/tmp",
                               "read_only": true})
        );
    }

    #[test]
    fn bad_specifications_are_refused_with_what_is_wrong() {
        let cases = [
            ("data", MountError::NoDestination),
            ("/srv", MountError::NoDestination),
            ("", MountError::NoDestination),
            ("a:/b:ro:x", MountError::Shape),
            ("a:/b:c:d:e", MountError::Shape),
            ("data:/data:rx", MountError::Mode("rx".into())),
            ("data:/data:RO", MountError::Mode("RO".into())),
            ("data:/data:", MountError::Mode(String::new())),
            (":/data", MountError::EmptySource),
            (":/data:ro", MountError::EmptySource),
            ("data:", MountError::EmptyDestination),
            ("data::ro", MountError::EmptyDestination),
            ("data:data", MountError::RelativeDestination("data".into())),
            ("/srv:srv:ro", MountError::RelativeDestination("srv".into())),
            ("./data:/data", MountError::RelativeSource("./data".into())),
            ("srv/www:/www", MountError::RelativeSource("srv/www".into())),
        ];
        for (spec, expected) in cases {
            assert_eq!(parse(spec), Err(expected), "{spec}");
        }
    }

    #[test]
    fn refusals_say_the_form_or_the_part_that_is_wrong() {
        let message = |spec: &str| parse(spec).unwrap_err().to_string();
        assert_eq!(
            message("data"),
            "no destination: expected SOURCE:DESTINATION[:OPTIONS]"
        );
        assert_eq!(
            message("a:/b:ro:x"),
            "too many ':': expected SOURCE:DESTINATION[:OPTIONS]"
        );
        assert_eq!(
            message("data:/data:rx"),
            "unknown mount option 'rx' (ro, rw, suid or dev, separated by commas)"
        );
        assert_eq!(
            message("data:data"),
            "the destination 'data' is not an absolute path in the container"
        );
        assert!(message("./x:/x").contains("neither an absolute host path nor a volume name"));
    }
}
