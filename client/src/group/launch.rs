//! [`LaunchEnv`]: the environment a launcher (`zhub launch`) gives the processes it starts,
//! written and read in this one place.

use std::process::Command;

use zhub_protocol::ids::random_u64;

use crate::error::{GroupError, GroupErrorKind};

/// Which group a launched process belongs to: the group's name, its size and this process's
/// member id, passed in the environment as `ZHUB_GROUP`, `ZHUB_GROUP_SIZE` and
/// `ZHUB_GROUP_MEMBER` (the id in hexadecimal). A launcher sets it on each process it
/// starts ([`LaunchEnv::set_on`]); the process reads it back ([`LaunchEnv::from_env`],
/// or [`Group::join_launched`](crate::Group::join_launched) directly).
///
/// ```no_run
/// use zhub_client::LaunchEnv;
///
/// for member in LaunchEnv::for_group("dice", 4) {
///     let mut command = std::process::Command::new("./player");
///     member.set_on(&mut command);
///     command.spawn()?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// The group's name.
    pub group: String,
    /// The group's size; `None` joins without waiting for a size.
    pub size: Option<usize>,
    /// This process's member id; `None` lets it take a random one.
    pub member: Option<u64>,
}

impl LaunchEnv {
    /// The variable holding the group's name.
    pub const GROUP: &'static str = "ZHUB_GROUP";
    /// The variable holding the group's size (decimal).
    pub const SIZE: &'static str = "ZHUB_GROUP_SIZE";
    /// The variable holding this process's member id (hexadecimal).
    pub const MEMBER: &'static str = "ZHUB_GROUP_MEMBER";

    /// One environment for each of the `size` members of `group`, each with a random member
    /// id of its own, so that the launcher knows which process is which member.
    pub fn for_group(group: &str, size: usize) -> Vec<LaunchEnv> {
        (0..size)
            .map(|_| LaunchEnv {
                group: group.to_owned(),
                size: Some(size),
                member: Some(random_u64()),
            })
            .collect()
    }

    /// The environment this process was started with; `None` when it was not started by a
    /// launcher (`ZHUB_GROUP` is not set). A missing size or member id is `None` in it.
    ///
    /// # Errors
    /// [`GroupErrorKind::BadRequest`] naming a variable that does not parse.
    pub fn from_env() -> Result<Option<LaunchEnv>, GroupError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`LaunchEnv::from_env`] over any source of variables (tests use a map).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>, GroupError> {
        let Some(group) = var(Self::GROUP) else {
            return Ok(None);
        };
        let bad = |name: &str| {
            GroupError::new(GroupErrorKind::BadRequest, format!("{name} is malformed"))
        };
        let size = var(Self::SIZE)
            .map(|s| s.parse::<usize>().map_err(|_| bad(Self::SIZE)))
            .transpose()?;
        let member = var(Self::MEMBER)
            .map(|s| u64::from_str_radix(&s, 16).map_err(|_| bad(Self::MEMBER)))
            .transpose()?;
        Ok(Some(LaunchEnv {
            group,
            size,
            member,
        }))
    }

    /// Sets this environment on `command` (what it leaves `None` is removed, so that a
    /// launcher started by another launcher does not pass its own on).
    pub fn set_on<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env(Self::GROUP, &self.group);
        match self.size {
            Some(size) => command.env(Self::SIZE, size.to_string()),
            None => command.env_remove(Self::SIZE),
        };
        match self.member {
            Some(member) => command.env(Self::MEMBER, format!("{member:016x}")),
            None => command.env_remove(Self::MEMBER),
        };
        command
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<LaunchEnv>, GroupError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LaunchEnv::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn what_a_launcher_sets_is_read_back() {
        for env in LaunchEnv::for_group("dice", 3) {
            let mut command = Command::new("true");
            env.set_on(&mut command);
            let vars: Vec<(String, String)> = command
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
                .collect();
            let pairs: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(read(&pairs).unwrap(), Some(env));
        }
    }

    #[test]
    fn no_group_is_no_launch_and_a_bad_variable_is_named() {
        assert_eq!(read(&[]).unwrap(), None);
        let open = read(&[("ZHUB_GROUP", "g")]).unwrap().unwrap();
        assert_eq!((open.size, open.member), (None, None));
        let err = read(&[("ZHUB_GROUP", "g"), ("ZHUB_GROUP_SIZE", "four")]).unwrap_err();
        assert_eq!(err.kind(), GroupErrorKind::BadRequest);
        assert!(err.to_string().contains("ZHUB_GROUP_SIZE"), "{err}");
        let err = read(&[("ZHUB_GROUP", "g"), ("ZHUB_GROUP_MEMBER", "xyz")]).unwrap_err();
        assert!(err.to_string().contains("ZHUB_GROUP_MEMBER"), "{err}");
    }

    #[test]
    fn launched_members_differ() {
        let members: std::collections::HashSet<_> = LaunchEnv::for_group("g", 50)
            .into_iter()
            .map(|e| e.member)
            .collect();
        assert_eq!(members.len(), 50);
    }
}
