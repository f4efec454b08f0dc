"""The guarantee processor: a pure state machine, its sealed store and the emulated device."""

from flexheg.device._agreement import Agreement, AgreementKind, LogConfig, NamedKeys
from flexheg.device._device import Device
from flexheg.device._power import GENESIS, PowerEvent, power_log_head, verify_power_log
from flexheg.device._processor import (
    AdmitResult,
    ChangeResult,
    ExtendResult,
    InstallResult,
    active_ruleset,
    admit,
    attest,
    change_approvers,
    check_succession,
    extend,
    install,
    meter,
    mode_at,
    power_event,
)
from flexheg.device._state import DeviceState, Installed, Mode, RunAccount
from flexheg.device._statements import ApproverSetChange, DeviceCertificate, Evidence, LifetimeExtension
from flexheg.device._store import IntegrityError, SealedStore

__all__ = [
    "GENESIS",
    "AdmitResult",
    "Agreement",
    "AgreementKind",
    "ApproverSetChange",
    "ChangeResult",
    "Device",
    "DeviceCertificate",
    "DeviceState",
    "Evidence",
    "ExtendResult",
    "InstallResult",
    "Installed",
    "IntegrityError",
    "LifetimeExtension",
    "LogConfig",
    "Mode",
    "NamedKeys",
    "PowerEvent",
    "RunAccount",
    "SealedStore",
    "active_ruleset",
    "admit",
    "attest",
    "change_approvers",
    "check_succession",
    "extend",
    "install",
    "meter",
    "mode_at",
    "power_event",
    "power_log_head",
    "verify_power_log",
]
