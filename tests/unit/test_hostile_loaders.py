"""Property: whatever YAML scalar, tag or INI value reaches any reader (halb.yaml, INI and
YAML inventories, installer configs, `init`'s arguments and the folder `init` scans),
halb either succeeds or exits 2 with short, escaped lines: never a traceback, never a
secret, never a control character on the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from halb.cli import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "installers"
SECRET = "Sekr3tPW"  # an SSH password / VRRP key placed where messages might quote it
runner = CliRunner()

# One value of each class the readers must survive, written as YAML or INI text.
HEX = "0x" + "f" * 3700  # constructs to an int of ~4500 digits: too long for str()
CLASSES = [
    "2024-02-30", "2024-02-03", "2001-12-14t21:59:43.10-05:00", "12:30:00", "1:20",
    "!!bool maybe", "!!int abc", "!!int ", "!!float ", "!!float abc", "!!timestamp abc",
    "!!timestamp 2024-13-01",
    "!!set {a, b}", "!!binary @@", "!!omap [a]", "!!python/name:os.system", "!unsafe x",
    "!vault x", "!!str [1]", "1" * 4400, "1" * 4000, HEX, "0b" + "1" * 14500, "-" + "9" * 4301,
    "²", "٣٣", "1e999", "-.inf", ".nan", "5.0e-324", "0o777", "1_000", "yes", "~", "",
    "x[0:99999999999999999999]", "n[1:3:0]", "[0:99999999999999999999]",
    "'\x1b[2J\x1b]0;title\x07'", '"\\e]0;t\\a\\nok: fake"', "'a\nok: fake'", "\u202egnp",
    "{a: 1, a: 2}", "&a [*a]", "*nope", "{? a}", "[[[[[[[[[[1]]]]]]]]]]", "a=b c=d",
    f"ansible_ssh_pass={SECRET}", f'"ansible_become_password={SECRET}"', "'", '"', "\\",
]  # fmt: skip
TAGS = ["", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!str ", "!!set ", "!!null "]
SCALAR = st.one_of(
    st.sampled_from(CLASSES),
    st.builds(str.__add__, st.sampled_from(TAGS), st.text(max_size=12)),
    st.integers().map(str),
    st.floats().map(repr),
)


def assert_clean(r: Result, secrets: tuple[str, ...] = (SECRET,)) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 2), r.output
    lines = r.output.splitlines()
    # a JSON document's lines are escaped by json.dumps; only messages are clipped
    json_lines = set(r.stdout.splitlines()) if r.stdout.startswith("{") else set()
    for line in lines:
        assert line.isprintable(), line[:200]
        assert len(line) <= 620 or line in json_lines, line[:200]
    if r.exit_code == 2:
        assert any(line.startswith("error:") for line in lines) or r.output.startswith("{")
        assert len(lines) <= 110  # findings are capped (50 per level and a count)
    for s in secrets:
        assert s not in r.output


INI = """\
[all]
lb1 ansible_host=10.0.0.11 ip=10.0.0.11 ansible_ssh_pass=Sekr3tPW
lb2 ansible_host=10.0.0.12 ip=10.0.0.12
m1 ansible_host=10.0.0.21 ip=10.0.0.21

[lb]
lb1
lb2

[kube-master]
m1

[k8s-cluster:children]
kube-master
"""
SPEC = """\
cluster: t
inventory: {inventory}
vips:
  internal: {{address: 10.0.0.250, interface: eth0}}
vrrp: {{version: 2, auth: {{password: Sekr3tPW}}}}
frontends:
  apiserver: {{port: 6443, backends: kube-master, backend_port: 6443}}
"""

# (where, old, new): `{V}` is the hostile text.
SPEC_SITES = [
    ("cluster: t", "cluster: {V}"),
    ("address: 10.0.0.250", "address: {V}"),
    ("interface: eth0", "interface: {V}"),
    ("interface: eth0}", "interface: eth0, router_id: {V}}"),
    ("interface: eth0}", "interface: eth0, priorities: {lb1: 100, lb2: {V}}}"),
    ("port: 6443,", "port: {V},"),
    ("version: 2,", "version: 2, preempt_delay: {V},"),
    ("version: 2,", "version: 2, advert_int: {V},"),
    ("password: Sekr3tPW", "password: {V}"),
    ("auth: {password: Sekr3tPW}", "auth: {V}"),
    ("cluster: t", "cluster: t\nlb_hosts: [lb1, {V}]"),
    ("cluster: t", "cluster: t\nhealth: {fall: {V}, inter: 2s}"),
    ("cluster: t", "cluster: t\nhealth: {inter: {V}}"),
    ("cluster: t", "cluster: t\ninstaller: {domain: {V}}"),
    ("cluster: t", "cluster: t\n{V}: 1"),
    ("cluster: t", "cluster: t\nvips: {V}"),
]
INI_SITES = [
    ("ip=10.0.0.12", "ip={V}"),
    ("ip=10.0.0.12", "ip=10.0.0.12 ansible_port={V}"),
    ("lb2 ansible_host", "{V} ansible_host"),
    ("[lb]\nlb1", "[lb]\n{V}"),
    ("[all]", "[all]\n{V}"),
    ("kube-master\n", "kube-master\n{V}\n"),
    ("[lb]", "[all:vars]\nansible_port={V}\n[lb]"),
    ("m1 ansible_host", "m[{V}:3] ansible_host"),
]
YAML_INVENTORY = """\
all:
  hosts:
    lb1: {ansible_host: 10.0.0.11, ip: 10.0.0.11, ansible_ssh_pass: Sekr3tPW}
    lb2: {ansible_host: 10.0.0.12, ip: 10.0.0.12}
    m1: {ansible_host: 10.0.0.21, ip: 10.0.0.21}
  children:
    lb: {hosts: {lb1: , lb2: }}
    kube-master: {hosts: {m1: }}
    k8s-cluster: {children: {kube-master: }}
"""
YAML_SITES = [
    ("ip: 10.0.0.12", "ip: {V}"),
    ("ip: 10.0.0.12", "ip: 10.0.0.12, ansible_port: {V}"),
    ("lb2: {ansible_host", "{V}: {ansible_host"),
    ("{lb1: , lb2: }", "{lb1: , {V}: }"),
    ("kube-master: {hosts", "{V}: {hosts"),
    ("m1: {ansible_host", "m[{V}:3]: {ansible_host"),
    ("  children:", "  vars: {ansible_port: {V}}\n  children:"),
]


def put(text: str, site: tuple[str, str], value: str) -> str:
    old, new = site
    assert old in text
    return text.replace(old, new.replace("{V}", value), 1)


SETTINGS = settings(
    max_examples=25,
    derandomize=True,  # the same examples on every run: CI never meets a new one by chance
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(site=st.sampled_from(SPEC_SITES), value=SCALAR, json_out=st.booleans())
def test_halb_yaml(
    site: tuple[str, str], value: str, json_out: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = tmp_path_factory.mktemp("spec")
    (d / "hosts.ini").write_text(INI)
    (d / "halb.yaml").write_text(put(SPEC.format(inventory="hosts.ini"), site, value))
    r = runner.invoke(app, ["validate", "-c", str(d / "halb.yaml"), *(["--json"] * json_out)])
    assert_clean(r)
    if json_out and r.stdout:
        json.loads(r.stdout)


@SETTINGS
@given(site=st.sampled_from(INI_SITES), value=SCALAR)
def test_ini_inventory(
    site: tuple[str, str], value: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = tmp_path_factory.mktemp("ini")
    (d / "hosts.ini").write_text(put(INI, site, value))
    (d / "halb.yaml").write_text(SPEC.format(inventory="hosts.ini"))
    assert_clean(runner.invoke(app, ["validate", "-c", str(d / "halb.yaml")]))


@SETTINGS
@given(site=st.sampled_from(YAML_SITES), value=SCALAR, name=st.sampled_from(["hosts.yml", "hosts"]))
def test_yaml_inventory(
    site: tuple[str, str], value: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = tmp_path_factory.mktemp("yml")
    (d / name).write_text(put(YAML_INVENTORY, site, value))
    (d / "halb.yaml").write_text(SPEC.format(inventory=name))
    assert_clean(runner.invoke(app, ["validate", "-c", str(d / "halb.yaml")]))


V4 = """\
apiVersion: kubekey.kubesphere.io/v1
kind: Config
spec:
  kubernetes:
    kube_version: v1.33.1
    control_plane_endpoint:
      host: lb.kubesphere.local
      port: 6443
      type: local
"""
CLUSTER_CONFIGURATION = """\
---
apiVersion: installer.kubesphere.io/v1alpha1
kind: ClusterConfiguration
metadata: {name: ks-installer, namespace: kubesphere-system}
spec:
  persistence: {storageClass: ""}
"""
# installer kind -> (file name, text, places a value goes)
CONFIGS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "kubesphere": (
        "common.yaml",
        (FIXTURES / "kubesphere-common.yaml").read_text(),
        [("\n", "\nextra: {V}\n"), ("\n", "\nloadbalancer_apiserver: {V}\n")],
    ),
    "kubespray": (
        "all.yml",
        (FIXTURES / "kubespray-all.yml").read_text(),
        [("\n", "\nextra: {V}\n"), ("\n", "\nloadbalancer_apiserver: {V}\n")],
    ),
    "kubekey": (
        "config-sample.yaml",
        (FIXTURES / "kubekey-cluster.yaml").read_text() + CLUSTER_CONFIGURATION,
        [
            ("    port: 6443", "    port: {V}"),
            ("domain: lb.kubesphere.local", "domain: {V}"),
            ('storageClass: ""', "storageClass: {V}"),
            ("\n", "\nextra: {V}\n"),
            ("kind: Cluster", "kind: {V}"),
            ("kind: ClusterConfiguration", "kind: {V}"),
        ],
    ),
    "kubekey-v4": (
        "config.yaml",
        V4,
        [
            ("      port: 6443", "      port: {V}"),
            ("type: local", "type: {V}"),
            ("  kubernetes:", "  {V}: 1\n  kubernetes:"),
            ("apiVersion: kubekey.kubesphere.io/v1\n", "apiVersion: {V}\n"),
        ],
    ),
}


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(list(CONFIGS)), value=SCALAR)
def test_installer_configs(
    data: st.DataObject, kind: str, value: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = tmp_path_factory.mktemp("installer")
    name, text, sites = CONFIGS[kind]
    site = data.draw(st.sampled_from(sites))
    (d / name).write_text(put(text, site, value))
    (d / "hosts.ini").write_text(INI)
    installer = "kubekey" if kind.startswith("kubekey") else kind
    spec = (
        SPEC.format(inventory="hosts.ini") + f"installer: {{kind: {installer}, config: {name}}}\n"
    )
    (d / "halb.yaml").write_text(spec)
    before = (d / name).read_bytes()
    # --json: the diff of the user's own file (which may hold its passwords) comes as JSON
    r = runner.invoke(app, ["write-config", "-c", str(d / "halb.yaml"), "--dry-run", "--json"])
    assert_clean(r, secrets=())
    messages = [ln for ln in r.output.splitlines() if ln.startswith(("error:", "warning:"))]
    assert not any(s in ln for ln in messages for s in (SECRET, "Changeme@1")), messages
    if r.exit_code == 0:
        json.loads(r.stdout)
    assert (d / name).read_bytes() == before


ARGS = st.one_of(st.sampled_from(CLASSES), st.text(max_size=20))
FOLDER = st.one_of(
    st.sampled_from(["conf", "inventory", "x\x1b[2Jy", "a\nb", "2024-02-30", "é", " ", "..."]),
    # no lone surrogates: a Linux file name is bytes, and those are no bytes at all
    st.text(
        alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
).filter(lambda s: s not in (".", ".."))


@SETTINGS
@given(
    flag=st.sampled_from(["--vip", "--external-vip", "--interface", "--cluster"]),
    value=ARGS,
    folder=FOLDER,
    beside=st.sampled_from(["common.yaml", "cluster.yaml", "config.yml", "group_vars/all.yml"]),
    content=SCALAR,
)
def test_init_arguments_and_the_folder_it_scans(
    flag: str,
    value: str,
    folder: str,
    beside: str,
    content: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    d = tmp_path_factory.mktemp("init") / folder
    (d / "group_vars").mkdir(parents=True)
    (d / "hosts.ini").write_text(INI)
    head = "apiVersion: kubekey.kubesphere.io/v1alpha2\nkind: Cluster\n"
    (d / beside).write_text(head + "spec:\n  controlPlaneEndpoint: {domain: " + content + "}\n")
    args: dict[str, Any] = {"--vip": "10.0.0.250", flag: value}
    argv = ["init", "-i", str(d / "hosts.ini"), "-o", str(d / "halb.yaml")]
    for k, v in args.items():
        argv += [k, v]
    r = runner.invoke(app, argv)
    assert_clean(r)
    if r.exit_code == 0:  # the starter it wrote validates or is refused cleanly
        assert_clean(runner.invoke(app, ["validate", "-c", str(d / "halb.yaml")]))


def test_secret_is_never_quoted_wherever_it_stands(tmp_path: Path) -> None:
    """An unquoted password on a line of its own, in a children section, before the host
    name, or as vrrp.auth itself: the message names the place, not the value."""
    cases = [
        INI.replace("[lb]", f"ansible_ssh_pass={SECRET}\n[lb]"),
        INI.replace("[all]", f"[all]\nansible_ssh_pass={SECRET}"),
        INI + f"ansible_become_pass={SECRET}\n",
        INI.replace("lb2 ansible_host", f"ansible_ssh_pass={SECRET} lb2 ansible_host"),
        INI.replace("[lb]", f"[lb]\n'ansible_password = {SECRET}'"),
    ]
    specs = [
        f"vrrp: {{version: 2, auth: {SECRET}}}",
        f"vrrp: {{version: 2, auth: [{SECRET}]}}",
        f"vrrp: {{version: 2, auth: {{password: [{SECRET}]}}}}",
        f"vrrp: {{version: 2, auth: {{password: {SECRET}, password_file: [{SECRET}]}}}}",
        f"vrrp: {{version: 2, auth: {{password: '{SECRET} #'}}}}",
    ]
    spec = SPEC.format(inventory="hosts.ini")
    runs = [(inv, spec) for inv in cases] + [
        (INI, spec.replace("vrrp: {version: 2, auth: {password: Sekr3tPW}}", s)) for s in specs
    ]
    for inv, text in runs:
        (tmp_path / "hosts.ini").write_text(inv)
        (tmp_path / "halb.yaml").write_text(text)
        for extra in ([], ["--json"]):
            r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml"), *extra])
            assert r.exit_code == 2, (inv, text, r.output)
            assert_clean(r)


def test_escapes_in_a_shared_address_are_shown_escaped_and_clipped(tmp_path: Path) -> None:
    bad = "'\x1b]0;pwned\x07\x1b[2J" + "\\n" * 0 + "ok: fake" + "x" * 5000 + "'"
    inv = INI.replace("ip=10.0.0.12", f"ip={bad}").replace("ip=10.0.0.21", f"ip={bad}")
    (tmp_path / "hosts.ini").write_text(inv)
    (tmp_path / "halb.yaml").write_text(SPEC.format(inventory="hosts.ini"))
    r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml")])
    assert r.exit_code == 2
    assert "\x1b" not in r.output and "\\x1b" in r.output
    assert not any(line.startswith("ok:") for line in r.output.splitlines())
    assert "is also the address of host lb2" in r.output
    assert len(r.output) < 2000
    assert_clean(r)


def test_yaml_inventory_escapes_and_newlines_in_values(tmp_path: Path) -> None:
    inv = yaml.safe_load(YAML_INVENTORY)
    bad = "\x1b[2J\nok: 2 LB host(s)\r\u2028" + "y" * 300
    inv["all"]["hosts"]["lb2"]["ip"] = bad
    inv["all"]["hosts"]["m1"]["ip"] = bad
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "halb.yaml").write_text(SPEC.format(inventory="hosts.yml"))
    for extra in ([], ["--json"]):
        r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml"), *extra])
        assert r.exit_code == 2
        assert_clean(r)
        assert not any(line.startswith("ok:") for line in r.output.splitlines())


def test_symlink_loop_as_the_spec_or_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    for argv in (
        ["validate", "-c", str(loop)],
        ["validate", "-c", "loop.yaml"],  # relative: the path is resolved first
        ["render", "-c", str(loop), "-o", str(tmp_path / "o")],
        ["export", "ansible", "-c", str(loop), str(tmp_path / "e")],
    ):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2, (argv, r.output)
        assert "loop.yaml" in r.output
        assert_clean(r)
    inv_loop = tmp_path / "inv.ini"
    inv_loop.symlink_to(inv_loop)
    (tmp_path / "halb.yaml").write_text(SPEC.format(inventory="inv.ini"))
    assert_clean(runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml")]))
    r = runner.invoke(
        app, ["init", "-i", str(inv_loop), "--vip", "10.0.0.250", "-o", str(tmp_path / "n.yaml")]
    )
    assert r.exit_code == 2
    assert_clean(r)


# Several values of each class, each through the places of every reader it can reach
# (the property above samples them; here every one runs).
BY_CLASS = {
    "constructor": ["2024-02-30", "!!bool maybe", "!!int abc", "!!float abc", "!!timestamp abc",
                    "!!timestamp 2024-13-01", "2023-02-29", "2024-02-03", "12:30:00"],
    "huge int": ["1" * 4400, "1" * 4000, HEX, "0b" + "1" * 14500, "-" + "9" * 4301],
    "unicode digits": ["²", "٣٣", "１２３", "߀"],
    "range overflow": ["x[0:99999999999999999999]", "x[0:10:0]", "x[" + "9" * 400 + ":1]",
                       "x[0:99999999999999999999:99999999999999999999999]"],
    "escapes": ["'\x1b[2J\x1b]0;title\x07'", '"\\e]0;t\\a\\nok: fake"', "\u202egnp", '"\\x9b31m"'],
    "sets and duplicates": ["!!set {a, b}", "{a: 1, a: 2}", "{? a}"],
}  # fmt: skip
CLASS_CASES = [(c, v) for c, vs in BY_CLASS.items() for v in vs]


@pytest.mark.parametrize(
    ("cls", "value"), CLASS_CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CLASS_CASES)]
)
def test_each_class_in_each_reader(cls: str, value: str, tmp_path: Path) -> None:
    spec = SPEC.format(inventory="hosts.ini")
    runs = [(INI, put(spec, site, value), "hosts.ini") for site in SPEC_SITES[:6]]
    runs += [(put(INI, site, value), spec, "hosts.ini") for site in INI_SITES]
    yspec = SPEC.format(inventory="hosts.yml")
    runs += [(put(YAML_INVENTORY, site, value), yspec, "hosts.yml") for site in YAML_SITES]
    for inv, text, name in runs:
        (tmp_path / name).write_text(inv)
        (tmp_path / "halb.yaml").write_text(text)
        r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml")])
        assert_clean(r)
    for kind, (name, text, sites) in CONFIGS.items():
        (tmp_path / name).write_text(put(text, sites[-1], value))
        installer = "kubekey" if kind.startswith("kubekey") else kind
        (tmp_path / "halb.yaml").write_text(
            spec + f"installer: {{kind: {installer}, config: {name}}}\n"
        )
        (tmp_path / "hosts.ini").write_text(INI)
        r = runner.invoke(
            app, ["write-config", "-c", str(tmp_path / "halb.yaml"), "--dry-run", "--json"]
        )
        assert_clean(r, secrets=())


@pytest.mark.parametrize(
    "site",
    [
        ("interface: eth0", "interface: all"),
        ("interface: eth0", "interface: default"),
        ("interface: eth0", "interface: lo"),
        ("version: 2,", "version: 2, preempt_delay: 5.0e-324,"),
        ("version: 2,", "version: 2, preempt_delay: 0.0001,"),
        ("version: 2,", "version: 2, preempt_delay: 1.0005,"),
        ("cluster: t", "{cluster: t, cluster: u}\n#"),
        ("interface: eth0", "interface: eth0, interface: eth1"),
        ("cluster: t", "cluster: t\nlb_hosts: !!set {lb1, lb2}"),
        ("cluster: t", "cluster: t\nlb_hosts: !!set {lb1}"),
    ],
)
def test_what_render_check_would_fail_is_refused_by_validate(
    site: tuple[str, str], tmp_path: Path
) -> None:
    (tmp_path / "hosts.ini").write_text(INI)
    (tmp_path / "halb.yaml").write_text(put(SPEC.format(inventory="hosts.ini"), site, ""))
    r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml")])
    assert r.exit_code == 2, r.output
    assert_clean(r)


def test_findings_are_capped_with_a_count(tmp_path: Path) -> None:
    # a few bytes: a range of 100 000 hosts sharing one address
    inv = INI + "[big]\nn[0:99999] ip=10.0.0.99\n"
    (tmp_path / "hosts.ini").write_text(inv)
    (tmp_path / "halb.yaml").write_text(SPEC.format(inventory="hosts.ini"))
    for extra in ([], ["--json"]):
        r = runner.invoke(app, ["validate", "-c", str(tmp_path / "halb.yaml"), *extra])
        assert r.exit_code == 2
        assert "99949 more errors not shown" in r.output
        assert len(r.output) < 20_000


def test_symlink_loop_as_the_spec_init_writes(tmp_path: Path) -> None:
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    (tmp_path / "h.ini").write_text(INI)
    for force in ([], ["--force"]):
        argv = ["init", "-i", str(tmp_path / "h.ini"), "--vip", "10.0.0.250", "-o", str(loop)]
        r = runner.invoke(app, argv + force)
        assert r.exit_code == 2 and "loop.yaml" in r.output, r.output
        assert_clean(r)
