//! The kinds of recorded operation: which requests are recorded, what each
//! is called in the store (frozen, `koogallery_protocol::ids::stored_kind`)
//! and in the metrics (free to change), and the rules that differ by kind.

use koogallery_contract::{Operation, OperationRequest, StatusChange};
use koogallery_protocol::ids::stored_kind;

/// A recorded operation's kind. queryInstance and changeInstanceCheck are
/// reads: answered by the plugin, never recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Create,
    Renew,
    Freeze,
    Unfreeze,
    Release,
    Upgrade,
    License,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Create,
        Kind::Renew,
        Kind::Freeze,
        Kind::Unfreeze,
        Kind::Release,
        Kind::Upgrade,
        Kind::License,
    ];

    /// The recorded kind of a request, `None` for reads.
    pub fn of(request: &OperationRequest) -> Option<Kind> {
        Some(match request {
            OperationRequest::Create(_) => Kind::Create,
            OperationRequest::Renew(_) => Kind::Renew,
            OperationRequest::UpdateStatus(r) => match r.change {
                StatusChange::Freeze => Kind::Freeze,
                StatusChange::Unfreeze => Kind::Unfreeze,
            },
            OperationRequest::Release(_) => Kind::Release,
            OperationRequest::Upgrade(_) => Kind::Upgrade,
            OperationRequest::IssueLicense(_) => Kind::License,
            OperationRequest::Query(_) | OperationRequest::ChangeCheck(_) => return None,
        })
    }

    /// The value of the store's `kind` column. Never changes.
    pub fn stored_name(self) -> &'static str {
        match self {
            Kind::Create => stored_kind::CREATE,
            Kind::Renew => stored_kind::RENEW,
            Kind::Freeze => stored_kind::FREEZE,
            Kind::Unfreeze => stored_kind::UNFREEZE,
            Kind::Release => stored_kind::RELEASE,
            Kind::Upgrade => stored_kind::UPGRADE,
            Kind::License => stored_kind::LICENSE,
        }
    }

    /// The kind a stored `kind` column names.
    pub fn from_stored_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.stored_name() == name)
    }

    /// The `kind` label of the operation metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Renew => "renew",
            Kind::Freeze => "status:freeze",
            Kind::Unfreeze => "status:unfreeze",
            Kind::Release => "release",
            Kind::Upgrade => "upgrade",
            Kind::License => "license",
        }
    }

    /// The contract function a kind runs.
    pub fn operation(self) -> Operation {
        match self {
            Kind::Create => Operation::Create,
            Kind::Renew => Operation::Renew,
            Kind::Freeze | Kind::Unfreeze => Operation::UpdateStatus,
            Kind::Release => Operation::Release,
            Kind::Upgrade => Operation::Upgrade,
            Kind::License => Operation::IssueLicense,
        }
    }

    /// Freeze and unfreeze toggle: once one succeeds, the other's record
    /// must stop replaying, so they are never hot-cached and each supersedes
    /// the other.
    pub fn toggles(self) -> Option<Kind> {
        match self {
            Kind::Freeze => Some(Kind::Unfreeze),
            Kind::Unfreeze => Some(Kind::Freeze),
            _ => None,
        }
    }

    /// What a success teaches the instance row.
    pub fn instance_status_after_success(self) -> Option<&'static str> {
        match self {
            Kind::Create | Kind::Renew | Kind::Unfreeze => Some("active"),
            Kind::Freeze => Some("frozen"),
            Kind::Release => Some("released"),
            Kind::Upgrade | Kind::License => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery_contract::{
        CallContext, ChangeCheckRequest, Instant, LicenseRequest, Product, QueryRequest,
        ReleaseRequest, RenewRequest, RenewScene, StatusCause, StatusRequest, UpgradeRequest,
    };

    fn call() -> CallContext {
        CallContext {
            idempotency_key: "k".into(),
            attempt: 1,
            test: false,
            request_id: "r".into(),
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_stored_name_and_runs_its_operation() {
        let mut names = std::collections::BTreeSet::new();
        for kind in Kind::ALL {
            assert_eq!(Kind::from_stored_name(kind.stored_name()), Some(kind));
            assert!(names.insert(kind.stored_name()), "{kind:?}: a name twice");
        }
        assert_eq!(Kind::from_stored_name("status:suspend"), None);
        let operations: Vec<Operation> = Kind::ALL.into_iter().map(Kind::operation).collect();
        assert_eq!(
            operations,
            [
                Operation::Create,
                Operation::Renew,
                Operation::UpdateStatus,
                Operation::UpdateStatus,
                Operation::Release,
                Operation::Upgrade,
                Operation::IssueLicense,
            ]
        );
    }

    #[test]
    fn reads_are_not_recorded_and_every_write_has_its_kind() {
        let query = OperationRequest::Query(QueryRequest {
            call: call(),
            instance_ids: vec!["i".into()],
        });
        let check = OperationRequest::ChangeCheck(ChangeCheckRequest {
            call: call(),
            instance_id: "i".into(),
            product: Product::default(),
        });
        assert_eq!(Kind::of(&query), None);
        assert_eq!(Kind::of(&check), None);
        let status = |change| {
            OperationRequest::UpdateStatus(StatusRequest {
                call: call(),
                instance_id: "i".into(),
                order_id: None,
                change,
                cause: StatusCause::Marketplace,
            })
        };
        let writes = [
            (status(StatusChange::Freeze), Kind::Freeze),
            (status(StatusChange::Unfreeze), Kind::Unfreeze),
            (
                OperationRequest::Renew(RenewRequest {
                    call: call(),
                    instance_id: "i".into(),
                    order_id: "o".into(),
                    order_line_id: None,
                    scene: RenewScene::Renewal,
                    product_id: None,
                    expire_at: Instant { unix_seconds: 1 },
                    extensions: vec![],
                }),
                Kind::Renew,
            ),
            (
                OperationRequest::Release(ReleaseRequest {
                    call: call(),
                    instance_id: "i".into(),
                    order_id: None,
                    order_line_id: None,
                }),
                Kind::Release,
            ),
            (
                OperationRequest::Upgrade(UpgradeRequest {
                    call: call(),
                    instance_id: "i".into(),
                    order_id: "o".into(),
                    order_line_id: None,
                    product: Product::default(),
                    extensions: vec![],
                }),
                Kind::Upgrade,
            ),
            (
                OperationRequest::IssueLicense(LicenseRequest {
                    call: call(),
                    instance_id: None,
                    order_id: Some("o".into()),
                    event_id: None,
                    customer: None,
                    product: None,
                    effective_at: None,
                    expire_at: None,
                    device_fingerprint: None,
                    extensions: vec![],
                }),
                Kind::License,
            ),
        ];
        for (request, kind) in writes {
            assert_eq!(Kind::of(&request), Some(kind));
            assert_eq!(kind.operation(), request.operation());
        }
        assert_eq!(Kind::Freeze.toggles(), Some(Kind::Unfreeze));
        assert_eq!(Kind::Unfreeze.toggles(), Some(Kind::Freeze));
        assert_eq!(Kind::Create.toggles(), None);
    }
}
