//! The protocol generations and the activities each one sends.

/// The protocol generation of a callback; `"v1"`/`"v2"` in configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// GET, fields and `authToken` in the query string.
    V1,
    /// POST JSON, `signature`/`timestamp`/`nonce` in the query string.
    V2,
}

impl Generation {
    pub fn label(self) -> &'static str {
        match self {
            Generation::V1 => "v1",
            Generation::V2 => "v2",
        }
    }
}

/// An activity, by its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activity {
    NewInstance,
    QueryInstance,
    RefreshInstance,
    /// V2 freeze/unfreeze.
    UpdateInstanceStatus,
    /// V1 expiry (a freeze).
    ExpireInstance,
    /// V1 pay-per-use freeze/normal.
    InstanceStatus,
    ReleaseInstance,
    /// V2 `upgradeInstance`.
    UpgradeInstance,
    /// V1 `upgrade`.
    Upgrade,
    ChangeInstanceCheck,
    /// V1 License 1.0 `getLicense`.
    GetLicense,
    /// V2 `getLicenseAsync`.
    GetLicenseAsync,
}

impl Activity {
    const V2: [Activity; 8] = [
        Activity::NewInstance,
        Activity::QueryInstance,
        Activity::RefreshInstance,
        Activity::UpdateInstanceStatus,
        Activity::ReleaseInstance,
        Activity::UpgradeInstance,
        Activity::ChangeInstanceCheck,
        Activity::GetLicenseAsync,
    ];
    const V1: [Activity; 8] = [
        Activity::NewInstance,
        Activity::QueryInstance,
        Activity::RefreshInstance,
        Activity::ExpireInstance,
        Activity::InstanceStatus,
        Activity::ReleaseInstance,
        Activity::Upgrade,
        Activity::GetLicense,
    ];

    /// The activities a generation sends.
    pub fn of(generation: Generation) -> &'static [Activity] {
        match generation {
            Generation::V1 => &Activity::V1,
            Generation::V2 => &Activity::V2,
        }
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            Activity::NewInstance => "newInstance",
            Activity::QueryInstance => "queryInstance",
            Activity::RefreshInstance => "refreshInstance",
            Activity::UpdateInstanceStatus => "updateInstanceStatus",
            Activity::ExpireInstance => "expireInstance",
            Activity::InstanceStatus => "instanceStatus",
            Activity::ReleaseInstance => "releaseInstance",
            Activity::UpgradeInstance => "upgradeInstance",
            Activity::Upgrade => "upgrade",
            Activity::ChangeInstanceCheck => "changeInstanceCheck",
            Activity::GetLicense => "getLicense",
            Activity::GetLicenseAsync => "getLicenseAsync",
        }
    }

    /// The activity `name` names in `generation`, if any.
    pub fn from_wire(generation: Generation, name: &str) -> Option<Activity> {
        Activity::of(generation)
            .iter()
            .copied()
            .find(|a| a.wire_name() == name)
    }
}
