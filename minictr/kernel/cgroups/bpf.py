"""Device rules on cgroup v2: a small eBPF program, assembled here and loaded with bpf(2).

cgroup v2 has no devices controller. Instead, a program of type
``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to a cgroup is asked about every
open and mknod of a device node by its processes, and answers 1 (allow) or
0 (deny: the call fails with EPERM). Its input is three numbers
(``struct bpf_cgroup_dev_ctx``)::

    access_type = (access << 16) | type    access: 1 mknod, 2 read, 4 write
    major, minor                           type:   1 block, 2 char

The program is the rules turned into code: for each rule, from the last to
the first (the last matching rule wins, as with v1's lists), "if the type,
the access, the major and the minor match, return allow"; at the end, deny.
A loaded program is attached to the container's cgroup with
``BPF_PROG_ATTACH``; the cgroup holds it, and it goes when the cgroup goes.
runc and crun do the same, with a library; here it is forty instructions
of hand-assembled eBPF.
"""

from __future__ import annotations

import ctypes
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import CgroupError, SyscallError
from minictr.kernel import linux

BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_QUERY = 5, 8, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # the attach type
BPF_F_ALLOW_MULTI = 2  # cooperate with programs on parent cgroups (systemd's): all must allow

DEV_TYPES = {"b": 1, "c": 2}
ACCESS = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes used below (linux/bpf.h: class | op | source)
LDX_W = 0x61  # dst = *(u32 *)(src + off)
AND_K = 0x57  # dst &= imm          (64-bit ALU)
RSH_K = 0x77  # dst >>= imm
MOV_K = 0xB7  # dst = imm
MOV_X = 0xBF  # dst = src
JNE_K = 0x55  # if dst != imm: pc += off
JNE_X = 0x5D  # if dst != src: pc += off
EXIT = 0x95  # return r0


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: 8 bytes, opcode, registers (src high nibble, dst low), offset, immediate."""
    return struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)


def rule_block(rule: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """The checks of one rule, then ``return allow``; jumps (offset 0 for now) skip to the next rule.

    Registers: r2 = type, r3 = requested access, r4 = major, r5 = minor (r1 is scratch).
    """
    code: list[tuple[int, int, int, int]] = []  # (opcode, dst, src, imm); offsets filled in later
    kind = rule.get("type", "a")
    if kind != "a":
        code.append((JNE_K, 2, 0, DEV_TYPES[kind]))
    access = sum(ACCESS[a] for a in set(rule.get("access", "rwm")))
    if access != 7:
        # the requested bits must all be in the rule's: (requested & rule) == requested
        code += [(MOV_X, 1, 3, 0), (AND_K, 1, 0, access), (JNE_X, 1, 3, 0)]
    if rule.get("major") is not None and rule["major"] >= 0:
        code.append((JNE_K, 4, 0, rule["major"]))
    if rule.get("minor") is not None and rule["minor"] >= 0:
        code.append((JNE_K, 5, 0, rule["minor"]))
    code += [(MOV_K, 0, 0, 1 if rule.get("allow") else 0), (EXIT, 0, 0, 0)]
    return code


def assemble(rules: list[dict[str, Any]]) -> bytes:
    """The whole program for OCI device ``rules`` (``{"allow", "type", "major", "minor", "access"}``)."""
    program = [
        insn(LDX_W, 2, 1, 0), insn(AND_K, 2, imm=0xFFFF),  # r2 = type
        insn(LDX_W, 3, 1, 0), insn(RSH_K, 3, imm=16),  # r3 = access
        insn(LDX_W, 4, 1, 4), insn(LDX_W, 5, 1, 8),  # r4 = major, r5 = minor
    ]  # fmt: skip
    for rule in reversed(rules):
        block = rule_block(rule)
        for index, (opcode, dst, src, imm) in enumerate(block):
            jump = opcode in (JNE_K, JNE_X)
            program.append(insn(opcode, dst, src, len(block) - index - 1 if jump else 0, imm))
        if len(block) == 2:
            # a rule for every device ("a", rwm) always returns: the verifier refuses code after it
            return b"".join(program)
    program += [insn(MOV_K, 0, imm=0), insn(EXIT)]  # nothing matched: deny
    return b"".join(program)


def load(program: bytes) -> int:
    """Load a device program (BPF_PROG_LOAD); return its file descriptor. A refusal carries the verifier's log."""
    code = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(1 << 16)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into(
        "<IIQQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        ctypes.addressof(code),
        ctypes.addressof(license),
    )
    struct.pack_into("<IIQ", attr, 24, 1, len(log), ctypes.addressof(log))  # log_level 1: say why if refused
    struct.pack_into("16s", attr, 48, b"minictr_devices")
    try:
        return linux.bpf(BPF_PROG_LOAD, attr)
    except SyscallError as exc:
        said = log.value.decode(errors="replace").strip().splitlines()
        raise CgroupError(
            f"loading the device program: {exc}" + (f" (verifier: {said[-1]})" if said else ""),
            errno=exc.errno,
            flag="--device",
        ) from exc


def attach_device_filter(cgroup: str, rules: list[dict[str, Any]]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup directory ``cgroup``."""
    prog = load(assemble(rules))
    target = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(32)
        struct.pack_into("<IIII", attr, 0, target, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        try:
            linux.bpf(BPF_PROG_ATTACH, attr)
        except SyscallError as exc:
            raise CgroupError(
                f"attaching the device program to {cgroup}: {exc}", path=cgroup, errno=exc.errno, flag="--device"
            ) from exc
    finally:
        os.close(target)
        os.close(prog)  # the cgroup keeps the program alive


def attached(cgroup: str) -> list[int]:
    """The ids of the device programs attached to ``cgroup`` itself (BPF_PROG_QUERY)."""
    target = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = ctypes.create_string_buffer(40)
        struct.pack_into("<IIIIQI", attr, 0, target, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
        linux.bpf(BPF_PROG_QUERY, attr)
        count = struct.unpack_from("<I", attr, 24)[0]
        return list(ids[:count])
    finally:
        os.close(target)
