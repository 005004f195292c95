"""python-plugin: a KooGallery merchant plugin in Python (componentize-py).

The gateway calls one method per marketplace callback, with the instance id
it assigned and an idempotency key that is the same on every retry of the
same operation (pass it to your backend, so a retry never provisions twice).
Answer quickly: the marketplace gives up after 5 s. Raise
`Err(types.PluginError_…("why"))` to decline; each case is one result code.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import provisioning as p
from wit_world.imports import config, log, types

from helpers import front_end_url


def info(message: str, **fields: object) -> None:
    log.log(log.Level.INFO, message, [log.Field(key=k, value=str(v)) for k, v in fields.items()])


class Provisioning(exports.Provisioning):
    def create(self, req: p.CreateRequest) -> p.Created:
        if not req.order_id:
            raise Err(types.PluginError_InvalidRequest("order-id is empty"))
        base = config.get("base_url") or "https://python-plugin.example.com"
        info("provisioning", instance_id=req.instance_id, test=req.call.test)
        app = types.AppInfo(
            front_end_url=front_end_url(base, req.instance_id),
            admin_url=None,
            user_name=None,
            password=None,
            memo=None,
        )
        return p.Created(instance_id=req.instance_id, app_info=app)

    def query(self, req: p.QueryRequest) -> List[p.InstanceReport]:
        if not req.instance_ids:
            raise Err(types.PluginError_InvalidRequest("no instance ids"))
        return [p.InstanceReport(instance_id=i, app_info=None, usage=[]) for i in req.instance_ids]

    def renew(self, req: p.RenewRequest) -> None:
        info("renewed", instance_id=req.instance_id)

    def update_status(self, req: p.StatusRequest) -> None:
        info("status changed", instance_id=req.instance_id, change=req.change.name)

    def release(self, req: p.ReleaseRequest) -> None:
        info("released", instance_id=req.instance_id)

    def upgrade(self, req: p.UpgradeRequest) -> None:
        info("upgraded", instance_id=req.instance_id)

    def change_check(self, req: p.ChangeCheckRequest) -> None:
        raise Err(types.PluginError_InvalidRequest("this product supports no change at renewal"))

    def issue_license(self, req: p.LicenseRequest) -> p.License:
        raise Err(types.PluginError_InvalidRequest("this product issues no licenses"))
