"""bench/network.py's city: its shape, its provisioning (kept between runs on request), its start.

* :func:`plan`: the nodes (parents first) and the units each hosts, for a :class:`Shape` (``FULL``:
  常德's 163 nodes and 3,600 units; ``MEDIUM``, ``QUICK``).
* :func:`provision`: the CAs (the root, one intermediate per county) and every node directory, in a
  process pool on tmpfs, then copied where the nodes run.
* A kept network (``bench/network.py --keep DIR``): the first run provisions into its run directory as
  always and copies the result (keys, certificates, seals, tokens; no store yet) to ``DIR``; a later
  run with the same ``DIR`` and shape copies it back instead of provisioning (:func:`reuse`): every
  node gets new ports, fresh CRLs and an empty store, so only the keys and certificates are the
  earlier run's. Provisioning the medium city stretches ~1,300 keys with PBKDF2 (minutes); copying
  takes seconds.
* :func:`publish_directory`: the signed network directory, built by ``gwx net build`` as a root
  operator does, installed on every node; :func:`build_network`: all of it, then every node started.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.localnet import PASSPHRASE, LocalNetwork, LocalNode
from node.provision import init_node
from pki.ca import CertificateAuthority
from pki.keystore import write_public_file
from pki.seal_picture import render_round_seal
from pki.unit_code import make_unit_code

REPO = Path(__file__).resolve().parent.parent
CITY_REGION, CITY_NAME = "430700", "常德市"
COUNTIES = [("wuling", "430702", "武陵区"), ("dingcheng", "430703", "鼎城区"), ("anxiang", "430721", "安乡县"),
            ("hanshou", "430722", "汉寿县"), ("lixian", "430723", "澧县"), ("linli", "430724", "临澧县"),
            ("taoyuan", "430725", "桃源县"), ("shimen", "430726", "石门县"), ("jinshi", "430781", "津市市")]
BUREAUS = ["发展和改革局", "教育局", "科学技术局", "工业和信息化局", "公安局", "民政局", "司法局", "财政局",
           "人力资源和社会保障局", "自然资源和规划局", "生态环境局", "住房和城乡建设局", "交通运输局", "水利局",
           "农业农村局", "商务局", "文化旅游广电体育局", "卫生健康局", "退役军人事务局", "应急管理局", "审计局",
           "市场监督管理局", "统计局", "医疗保障局", "林业局", "城市管理和综合执法局", "信访局", "机关事务局"]
OFFICE = make_unit_code(f"11{CITY_REGION}MB0000001")  # 常德市人民政府办公室, the sender


@dataclass(frozen=True)
class Shape:
    counties: int
    townships: int       # in all, spread over the counties
    city_units: int      # the government office and the city bureaus
    county_units: int    # per county: its office and bureaus
    units: int           # in all; what is left goes to the townships (the township and its villages)


FULL = Shape(counties=9, townships=153, city_units=60, county_units=30, units=3600)
QUICK = Shape(counties=2, townships=4, city_units=6, county_units=6, units=60)
# A third of the city with the full run's load per process: its 54 nodes below the city in ONE process
# (--processes 2), for comparing changes in a few minutes without a full run.
MEDIUM = Shape(counties=3, townships=51, city_units=20, county_units=30, units=1200)


@dataclass
class NodePlan:
    node_id: str
    level: str
    parent: str | None
    ca: int  # index into the network's CAs: 0 the root, k the k-th county's
    units: list[dict] = field(default_factory=list)


def _organ(region: str, n: int) -> str:
    return make_unit_code(f"11{region}MB{n:07d}")


def plan(shape: Shape) -> list[NodePlan]:
    """The nodes of the network, parents before children, with the units each hosts."""
    if shape.counties > len(COUNTIES):
        raise ValueError(f"at most {len(COUNTIES)} counties")
    city = NodePlan("city", "city", None, 0)
    city.units = [{"code": OFFICE, "name": f"{CITY_NAME}人民政府办公室", "level": "city"}]
    city.units += [{"code": _organ(CITY_REGION, i + 2), "name": _bureau(CITY_NAME, i), "level": "city"}
                   for i in range(shape.city_units - 1)]
    nodes = [city]
    left = shape.units - shape.city_units - shape.counties * shape.county_units
    per_township, extra = divmod(left, shape.townships)
    township_index = 0
    for k, (slug, region, name) in enumerate(COUNTIES[:shape.counties]):
        county = NodePlan(f"county-{slug}", "county", "city", k + 1)
        office = _organ(region, 1)
        county.units = [{"code": office, "name": f"{name}人民政府办公室", "level": "county"}]
        county.units += [{"code": _organ(region, i + 2), "name": _bureau(name, i), "level": "county"}
                         for i in range(shape.county_units - 1)]
        nodes.append(county)
        count = shape.townships // shape.counties + (1 if k < shape.townships % shape.counties else 0)
        for j in range(1, count + 1):
            township = NodePlan(f"{slug}-t{j:02d}", "township", county.node_id, k + 1)
            code, town = _organ(region, 1000 * j), f"{name}第{j}镇"
            township.units = [{"code": code, "name": f"{town}人民政府", "level": "township", "parent": office}]
            villages = per_township + (1 if township_index < extra else 0) - 1
            township.units += [{"code": make_unit_code(f"54{region}MA{1000 * j + v:07d}"),
                                "name": f"{town}第{v}村村民委员会", "level": "village", "parent": code}
                               for v in range(1, villages + 1)]
            township_index += 1
            nodes.append(township)
    return nodes


def _bureau(place: str, i: int) -> str:
    return f"{place}{BUREAUS[i]}" if i < len(BUREAUS) else f"{place}第{i + 1}直属单位"


# ---- provisioning (a process pool; each worker issues from one CA at a time) -----------------------
_POOL: dict = {}


def _provision(jobs: list[tuple[NodePlan, int, int]]) -> dict[str, dict[str, str]]:
    """Node directories for ``jobs`` (plan, peer port, local port); returns each node's tokens."""
    net: LocalNetwork = _POOL["net"]
    tokens = {}
    for node, peer_port, local_port in jobs:
        units = [{"code": u["code"], "name": u["name"], "level": u["level"], "parent": u.get("parent")}
                 for u in node.units]
        _, tokens[node.node_id] = init_node(net.base / node.node_id, node.node_id, net.cas[node.ca], units,
                                            PASSPHRASE, peer_port=peer_port, local_port=local_port,
                                            seal_picture=_POOL["picture"])
    return tokens


def provision(base: Path, nodes: list[NodePlan], shape: Shape, workers: int) -> LocalNetwork:
    """The CAs and every node directory, with their CRLs, in ``base``.

    Built on tmpfs (``/dev/shm``) when there is one, then copied: every key, certificate and token
    file is fsynced as it is written (~13 fsyncs per unit), which on this disk is half the time of
    3,600 units. The nodes then run from ``base``, where their stores fsync as they always do."""
    shm = Path("/dev/shm")
    scratch = (Path(tempfile.mkdtemp(prefix="gwx-bench-provision-", dir=shm))
               if shm.is_dir() and os.access(shm, os.W_OK) else None)
    build = scratch / "net" if scratch else base
    try:
        net = LocalNetwork(build, f"{CITY_NAME}电子政务CA")
        for slug, _, name in COUNTIES[:shape.counties]:
            net.add_intermediate(f"ca-{slug}", f"{name}电子政务CA")
        ports_left = listening_ports(2 * len(nodes))
        groups: dict[int, list] = {}
        for node in nodes:
            groups.setdefault(node.ca, []).append((node, ports_left.pop(), ports_left.pop()))
        _POOL.update(net=net, picture=render_round_seal(CITY_NAME))
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_provision, groups.values()))
        tokens = {k: v for result in results for k, v in result.items()}
        for node in nodes:
            net.nodes[node.node_id] = LocalNode(node.node_id, build / node.node_id, node.units, tokens[node.node_id])
        net.publish_crls()  # every node checks certificates from all the CAs
        if scratch is not None:
            shutil.copytree(build, base, symlinks=True)
            net.base = base
            net.cas = [CertificateAuthority.open(base / ca.directory.relative_to(build), PASSPHRASE) for ca in net.cas]
            net.ca = net.cas[0]
            for node in net.nodes.values():
                node.directory = base / node.node_id
        return net
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def listening_ports(count: int) -> list[int]:
    """``count`` free ports below the kernel's ephemeral range. The nodes start minutes after their
    ports are chosen; a port the kernel may hand to any outgoing connection meanwhile (what
    ``free_port`` returns) is taken by then often enough to stop a 163-node start."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(10000, low))
    random.shuffle(candidates)  # two benches (or a bench and its test) at once pick apart
    ports = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"fewer than {count} free ports between 10000 and {low}")


def publish_directory(net: LocalNetwork, nodes: list[NodePlan], routing: str) -> int:
    """``gwx net build`` from a source file, as the root operator would; installed on every node.
    Returns the directory's size in bytes."""
    by_id = {n.node_id: n for n in nodes}
    lines = [f'network = "{CITY_NAME}电子政务外网"', "version = 1"]
    if routing == "direct":  # the city reaches every node below its counties directly
        links = [f'["city", "{n.node_id}"]' for n in nodes if n.parent not in (None, "city")]
        lines.append(f"links = [{', '.join(links)}]")
    for node in nodes:
        lines += ["[[nodes]]", f'id = "{node.node_id}"', f'urls = ["{_peer_url(net.nodes[node.node_id])}"]',
                  f'level = "{node.level}"', f'credentials = "{node.node_id}/credentials"']
        lines += [f'parent = "{node.parent}"'] if node.parent else []
    for node in nodes:
        for unit in node.units:
            lines += ["[[units]]", f'code = "{unit["code"]}"', f'name = "{unit["name"]}"',
                      f'level = "{unit["level"]}"', f'node = "{node.node_id}"']
            lines += [f'parent = "{unit["parent"]}"'] if unit.get("parent") else []
    source, out = net.base / "network.toml", net.base / "directory.json"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    done = subprocess.run([sys.executable, "-m", "node.cli.main", "net", "build", "--source", str(source),
                           "--ca", str(net.base / "ca"), "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "GWX_PASSPHRASE": PASSPHRASE.decode()}, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"gwx net build failed ({done.returncode}): {done.stderr or done.stdout}")
    data = out.read_bytes()
    for node_id in by_id:
        write_public_file(net.nodes[node_id].directory / "directory.json", data)
    return len(data)


def _peer_url(node: LocalNode) -> str:
    return load_config(node.directory).peer_api.public_url


@dataclass
class City:
    net: LocalNetwork
    nodes: list[NodePlan]
    processes: list[subprocess.Popen]
    figures: dict


def build_network(base: Path, shape: Shape, *, routing: str = "direct", processes: int = 4,
                  workers: int = 2, start_timeout: float = 300.0, keep: Path | None = None) -> City:
    """Provision (or, with ``keep`` holding this shape's network, reuse), publish the directory and
    start every node; the caller stops ``city.net``."""
    figures: dict = {}
    t0 = time.perf_counter()
    nodes = plan(shape)
    figures["reused"] = keep is not None and kept(keep, shape)
    if figures["reused"]:
        net = reuse(base, nodes, shape, keep)
    else:
        net = provision(base, nodes, shape, workers)
        if keep is not None:
            keep_network(base, shape, keep)
    figures["provision_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures["directory_bytes"] = publish_directory(net, nodes, routing)
    figures["directory_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Counties first, dealt round: the relays (and the county bureaus) spread over the processes.
    others = [net.nodes[n.node_id] for n in sorted(nodes[1:], key=lambda n: n.level != "county")]
    slices = max(1, processes - 1)
    groups = [[net.nodes["city"]]] + [others[i::slices] for i in range(slices) if others[i::slices]]
    started = net.start_cohosted(groups, timeout=start_timeout)
    figures["start_s"] = time.perf_counter() - t0
    return City(net, nodes, started, figures)


# ---- a network kept between runs (--keep DIR) -------------------------------------------------------
KEPT = "network.json"  # in a keep directory, written last: the shape its network was provisioned for


def keep_network(base: Path, shape: Shape, keep: Path) -> None:
    """Copy a network just provisioned in ``base`` (no node has run: no store, no log) to ``keep``."""
    keep.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(keep / "net", ignore_errors=True)  # an earlier copy that was cut short
    shutil.copytree(base, keep / "net", symlinks=True)
    write_public_file(keep / KEPT, json.dumps({"shape": asdict(shape)}).encode())


def kept(keep: Path, shape: Shape) -> bool:
    """Whether ``keep`` holds a network provisioned for ``shape``; one of another shape is an error
    (a medium run must not quietly provision over a kept full city)."""
    if not (keep / KEPT).exists():
        return False
    held = json.loads((keep / KEPT).read_text("utf-8"))["shape"]
    if held != asdict(shape):
        raise ValueError(f"{keep} holds a network of another shape ({held}); give another directory")
    return True


def reuse(base: Path, nodes: list[NodePlan], shape: Shape, keep: Path) -> LocalNetwork:
    """The kept network copied to ``base``: its CAs, keys, certificates, seals and tokens as provisioned;
    new ports for every node (the kept ones may be taken by now), every CA's fresh CRL; no store:
    each node starts with an empty one, as after :func:`provision`."""
    shutil.copytree(keep / "net", base, symlinks=True)
    net = LocalNetwork.reopen(base, ["ca", *(f"ca-{slug}" for slug, _, _ in COUNTIES[:shape.counties])])
    ports = listening_ports(2 * len(nodes))
    for node in nodes:
        directory = base / node.node_id
        _listen_on(directory, ports.pop(), ports.pop())
        net.adopt(node.node_id, directory, node.units)
    net.publish_crls()
    return net


def _listen_on(directory: Path, peer_port: int, local_port: int) -> None:
    host = load_config(directory).peer_api.host
    url_host = f"[{host}]" if ":" in host else host

    def edit(document) -> None:
        set_section_values(document, "peer_api", {"port": peer_port, "public_url": f"https://{url_host}:{peer_port}"})
        set_section_values(document, "local_api", {"port": local_port})

    edit_config(directory, edit)
