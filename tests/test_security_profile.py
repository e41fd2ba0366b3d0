"""The security options and the default profile, without containers: parsing, resolution, compilation."""

from __future__ import annotations

import errno

import pytest

from minictr.errors import UsageError
from minictr.kernel.security import capabilities, options, profile, seccomp


def test_capability_names_masks_and_docker_flags() -> None:
    assert capabilities.mask(list(capabilities.DEFAULT)) == 0xA80425FB  # what Docker's containers show as CapEff
    assert capabilities.decode("00000000a80425fb") == sorted(capabilities.DEFAULT, key=capabilities.NUMBERS.__getitem__)
    assert capabilities.canonical("net_admin") == capabilities.canonical("CAP_NET_ADMIN") == "CAP_NET_ADMIN"
    assert capabilities.resolve(["ALL"], ["sys_admin"]) == [c for c in capabilities.NAMES if c != "CAP_SYS_ADMIN"]
    assert capabilities.resolve(["chown"], ["ALL"]) == ["CAP_CHOWN"]
    with pytest.raises(UsageError, match="unknown capability 'fly'"):
        capabilities.resolve(["fly"], [])


def test_security_opts() -> None:
    parsed = options.parse_security_opts(["no-new-privileges=false", "seccomp:unconfined"])
    assert (parsed.no_new_privileges, parsed.seccomp) == (False, "unconfined")
    assert options.parse_security_opts(["no-new-privileges"]).no_new_privileges is True
    assert options.parse_security_opts(["seccomp=/etc/a:b.json"]).seccomp == "/etc/a:b.json"
    with pytest.raises(UsageError):
        options.parse_security_opts(["label=disable"])


def test_the_default_profile_follows_the_capabilities() -> None:
    def allowed(caps: list[str]) -> set[str]:
        section = profile.to_oci(profile.default_profile(), caps, "x86_64")
        return {
            n
            for rule in section["syscalls"]
            if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            for n in rule["names"]
        }

    default, admin = allowed(list(capabilities.DEFAULT)), allowed([*capabilities.DEFAULT, "CAP_SYS_ADMIN"])
    assert {"read", "execve", "chroot", "arch_prctl"} <= default
    assert not {"mount", "unshare", "setns", "init_module", "keyctl", "reboot", "s390_runtime_instr"} & default
    assert {"mount", "unshare", "setns"} <= admin


def test_clone_namespace_flags_and_clone3_rules() -> None:
    section = profile.to_oci(profile.default_profile(), list(capabilities.DEFAULT), "x86_64")
    clone = [r for r in section["syscalls"] if r["names"] == ["clone"]]
    assert clone == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": profile.CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    clone3 = [r for r in section["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_compiled_filter_and_unknown_names() -> None:
    section = profile.to_oci(profile.default_profile(), list(capabilities.DEFAULT))
    program = seccomp.program(section)
    assert len(program) % 8 == 0 and len(program) > 8 * 100  # classic BPF: 8 bytes an instruction
    assert seccomp.program(section) == program  # the same section compiles to the same program
    with pytest.raises(UsageError, match="unknown system call 'mkdri'"):
        seccomp.Filter(
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}
        )
    with pytest.raises(UsageError, match="unknown action"):
        seccomp.Filter({"defaultAction": "SCMP_ACT_MAYBE"})
