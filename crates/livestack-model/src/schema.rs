//! The wire schema as data: which actions exist, which struct each takes and
//! returns, and each member's wire name, type and input `required` flag.
//!
//! This is what a data-driven parameter validator walks; the tables
//! themselves are generated (see `generated.rs`), the types here are not.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::generated::tables;

/// A member's wire type, as the spec declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A signed 64-bit integer (`int64`).
    Int,
    /// An unsigned 64-bit integer (`uint64`).
    Uint,
    /// A floating-point number.
    Float,
    /// A boolean.
    Bool,
    /// A string (including the spec's `datetime`, which is a string on the
    /// wire).
    String,
    /// A nested object, named as in [`STRUCTS`] (resolve it with
    /// [`find_struct`]).
    Object(&'static str),
    /// An array of the given element type.
    List(&'static Ty),
}

/// One member of a struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSchema {
    /// The wire name, e.g. `PageSize`.
    pub name: &'static str,
    /// The wire type.
    pub ty: Ty,
    /// Whether callers must send it (the spec's input `required` flag;
    /// `false` when the spec does not say).
    pub required: bool,
}

/// One object of the spec: an action's request or response, or a nested
/// object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructSchema {
    /// The spec's object name, which is also the Rust struct's name.
    pub name: &'static str,
    /// The members in spec order (a response's `RequestId` is left out: the
    /// envelope adds it).
    pub members: &'static [MemberSchema],
}

impl StructSchema {
    /// The member with this exact wire name.
    pub fn member(&self, name: &str) -> Option<&'static MemberSchema> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// One action of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSchema {
    /// The action name, e.g. `DescribeLiveDomains`.
    pub name: &'static str,
    /// The name of its request struct.
    pub input: &'static str,
    /// The name of its response struct.
    pub output: &'static str,
    /// Whether it comes from `spec/legacy-api.json` (removed from the
    /// current model but still called by older clients).
    pub legacy: bool,
}

/// One service of the gateway: its name in a TC3 credential scope, its
/// version, and its model's tables. Struct names are only unique within a
/// service (CAM and Live both have objects of the same name), so nested
/// objects are always resolved through the service they belong to.
pub struct Service {
    /// The service name (`live`, `cam`, `sts`), as in `<service>.tencentcloudapi.com`.
    pub name: &'static str,
    /// The one version served, e.g. `2018-08-01`.
    pub version: &'static str,
    /// Every struct, sorted by name.
    pub structs: &'static [StructSchema],
    /// Every action, sorted by name.
    pub actions: &'static [ActionSchema],
    /// Built on first use: every request looks its action up by name and
    /// then its input struct, and a binary search of string comparisons
    /// over hundreds of names cost more than a hash.
    index: OnceLock<Index>,
}

/// A service's actions by name, and each action's input struct.
struct Index {
    actions: HashMap<&'static str, usize>,
    inputs: Vec<Option<&'static StructSchema>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Service {
    const fn new(
        name: &'static str,
        version: &'static str,
        structs: &'static [StructSchema],
        actions: &'static [ActionSchema],
    ) -> Service {
        Service {
            name,
            version,
            structs,
            actions,
            index: OnceLock::new(),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index {
            actions: self
                .actions
                .iter()
                .enumerate()
                .map(|(i, a)| (a.name, i))
                .collect(),
            inputs: self
                .actions
                .iter()
                .map(|a| self.find_struct(a.input))
                .collect(),
        })
    }

    /// The struct with this exact name.
    pub fn find_struct(&self, name: &str) -> Option<&'static StructSchema> {
        let index = self.structs.binary_search_by(|s| s.name.cmp(name)).ok()?;
        Some(&self.structs[index])
    }

    /// The action with this exact name.
    pub fn find_action(&self, name: &str) -> Option<&'static ActionSchema> {
        Some(&self.actions[self.action_index(name)?])
    }

    /// The position of the action with this exact name in [`Service::actions`].
    pub fn action_index(&self, name: &str) -> Option<usize> {
        self.index().actions.get(name).copied()
    }

    /// The input struct of the action at `index` in [`Service::actions`].
    pub fn input_of(&self, index: usize) -> Option<&'static StructSchema> {
        self.index().inputs.get(index).copied().flatten()
    }
}

/// Cloud Live (CSS), `live` 2018-08-01.
pub static LIVE: Service = Service::new("live", "2018-08-01", tables::STRUCTS, tables::ACTIONS);

/// Cloud Access Management, `cam` 2019-01-16.
pub static CAM: Service = Service::new(
    "cam",
    "2019-01-16",
    crate::cam::tables::STRUCTS,
    crate::cam::tables::ACTIONS,
);

/// Security Token Service, `sts` 2018-08-13.
pub static STS: Service = Service::new(
    "sts",
    "2018-08-13",
    crate::sts::tables::STRUCTS,
    crate::sts::tables::ACTIONS,
);

/// Every service the gateway serves.
pub static SERVICES: &[&Service] = &[&LIVE, &CAM, &STS];

/// The service with this name (`live`, `cam`, `sts`).
pub fn service_named(name: &str) -> Option<&'static Service> {
    SERVICES.iter().copied().find(|s| s.name == name)
}

/// The service whose version this is.
pub fn service_of_version(version: &str) -> Option<&'static Service> {
    SERVICES.iter().copied().find(|s| s.version == version)
}

/// Every struct of the Live model, sorted by name.
pub static STRUCTS: &[StructSchema] = tables::STRUCTS;

/// Every Live action, current and legacy, sorted by name.
pub static ACTIONS: &[ActionSchema] = tables::ACTIONS;

/// Every Live action name, current and legacy, sorted.
pub const ALL_ACTIONS: &[&str] = tables::ALL_ACTIONS;

/// The Live struct with this exact name.
pub fn find_struct(name: &str) -> Option<&'static StructSchema> {
    LIVE.find_struct(name)
}

/// The Live action with this exact name.
pub fn find_action(name: &str) -> Option<&'static ActionSchema> {
    LIVE.find_action(name)
}
