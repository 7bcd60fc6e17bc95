"""What a host offers the host-level network faults: nftables, tc and the kernel's netem — here or over SSH.

One POSIX sh script, given on stdin to a `Shell` (`clients.nft.LocalShell`, or an SSH session), asks the
host; nothing on the host is changed (no table, no qdisc is created to find out). netem counts as
available only where the kernel says so: its module loaded (/sys/module/sch_netem), installed for the
running kernel (`modinfo sch_netem`), or built in (CONFIG_NET_SCH_NETEM=y in the kernel's config).
"""

from __future__ import annotations

from dataclasses import dataclass

from clients.nft import Nft, NftError, Shell

TIMEOUT_S = 15.0

# Prints "tc<TAB>yes|no|denied<TAB>detail" and "netem<TAB>loaded|module|builtin|no<TAB>detail".
_TOOLS_SCRIPT = r"""PATH="$PATH:/usr/sbin:/sbin"
if command -v tc >/dev/null 2>&1; then
  if out=$(tc qdisc show dev lo 2>&1); then printf 'tc\tyes\t%s\n' "$(command -v tc)"
  else printf 'tc\tdenied\t%s\n' "$(printf '%s' "$out" | head -n 1)"; fi
else printf 'tc\tno\tno tc program in PATH (Debian: apt-get install iproute2)\n'; fi
k=$(uname -r)
cfg=""
[ -r "/boot/config-$k" ] && cfg=$(grep -s '^CONFIG_NET_SCH_NETEM=' "/boot/config-$k")
if [ -z "$cfg" ] && [ -r /proc/config.gz ] && command -v zcat >/dev/null 2>&1; then
  cfg=$(zcat /proc/config.gz | grep '^CONFIG_NET_SCH_NETEM=')
fi
if [ -d /sys/module/sch_netem ]; then printf 'netem\tloaded\tsch_netem is loaded\n'
elif [ -n "$(find "/lib/modules/$k" -name 'sch_netem.ko*' 2>/dev/null | head -n 1)" ] ||
  { command -v modinfo >/dev/null 2>&1 && modinfo sch_netem >/dev/null 2>&1; }; then
  printf 'netem\tmodule\tsch_netem is installed for kernel %s (loaded on first use)\n' "$k"
elif [ "$cfg" = CONFIG_NET_SCH_NETEM=y ]; then printf 'netem\tbuiltin\tbuilt into kernel %s\n' "$k"
elif [ -n "$cfg" ]; then
  printf 'netem\tno\tkernel %s: sch_netem not loaded and its module not installed (%s)\n' "$k" "$cfg"
else
  printf 'netem\tno\tkernel %s: sch_netem not loaded, no module in /lib/modules/%s, ' "$k" "$k"
  printf 'no kernel config saying it is built in\n'
fi
"""


@dataclass(frozen=True)
class Tool:
    """One capability of a host: available or not, and what was found (the reason when not)."""

    available: bool
    detail: str

    def text(self) -> str:
        return f"{'available' if self.available else 'not available'} ({self.detail})"


@dataclass(frozen=True)
class HostTools:
    """nft, tc and netem on one host."""

    nft: Tool
    tc: Tool
    netem: Tool


def _nft(shell: Shell) -> Tool:
    try:
        tables = Nft(shell, timeout_s=TIMEOUT_S).tables()
    except NftError as exc:  # missing, or the user lacks CAP_NET_ADMIN: the message says which and the fix
        return Tool(False, str(exc))
    return Tool(True, f"nft lists {len(tables)} inet table(s)")


def host_tools(shell: Shell) -> HostTools:
    """Ask the host; a host that cannot be asked raises what its shell raises (SshError, NftError)."""
    nft = _nft(shell)
    code, out, err = shell.run(["sh", "-s"], stdin=_TOOLS_SCRIPT, timeout_s=TIMEOUT_S)
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, _, rest = line.partition("\t")
        state, _, detail = rest.partition("\t")
        found[name] = (state, detail)
    if code != 0 or not {"tc", "netem"} <= set(found):
        said = " ".join(err.split())[:200] or f"exit code {code}"
        unknown = Tool(False, f"cannot tell: the check on {shell.label} failed: {said}")
        return HostTools(nft, unknown, unknown)
    tc_state, tc_detail = found["tc"]
    tc = Tool(tc_state == "yes", tc_detail if tc_state != "denied" else f"tc refused: {tc_detail}")
    netem_state, netem_detail = found["netem"]
    return HostTools(nft, tc, Tool(netem_state != "no", netem_detail))
