// Checks this receipt in the customer's browser: the record, its RFC 6962 leaf hash, the RFC 9162
// inclusion proof and the operator's Ed25519-signed C2SP checkpoint, with WebCrypto only.
"use strict";
(() => {
  const RETRY_MAX = 10;
  const RETRY_DELAY_MS = 3000;
  const SIGNATURE_PREFIX = "\u2014 "; // em dash, space (c2sp.org/signed-note)
  const DEFAULT_KEY_URL = "/.well-known/posray/log-key";
  const LABELS = {
    code: "Receipt code", receipt: "Receipt contents", position: "Position in the log",
    leaf: "Leaf hash", checkpoint: "Checkpoint signature", "tree-head": "Tree head",
    inclusion: "Inclusion proof", download: "Fetching the proof and key", browser: "Browser",
  };
  const utf8 = new TextEncoder();
  const $ = (id) => document.getElementById(id);

  // ---- bytes, hashes, encodings ------------------------------------------------------------
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const fromHex32 = (text) => {
    if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) return null;
    return Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
  };
  const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const b64encode = (bytes) => btoa(String.fromCharCode(...bytes));
  const b64decode = (text) => { // canonical standard base64 only, like the Python verifier
    try {
      const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
      return b64encode(bytes) === text ? bytes : null;
    } catch (e) { return null; }
  };
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // RFC 9162 §2.1.3.2, with BigInt because tree sizes exceed 32-bit bitwise arithmetic.
  async function verifyInclusion(leaf, index, size, proof, root) {
    if (!(index >= 0n && index < size)) return false;
    let fn = index, sn = size - 1n, r = leaf;
    for (const p of proof) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n && sameBytes(r, root);
  }

  // ---- the log key and the signed checkpoint -------------------------------------------------
  async function readKey(doc) {
    const publicKey = b64decode(doc && doc.public_key_ed25519);
    const name = doc && doc.key_name;
    if (typeof name !== "string" || !name || /[\s+]/.test(name) || !publicKey || publicKey.length !== 32) {
      throw new Error("the log key document is malformed");
    }
    const keyId = (await sha256(concat(utf8.encode(name + "\n"), Uint8Array.of(1), publicKey))).slice(0, 4);
    const verifierKey = `${name}+${hex(keyId)}+${b64encode(concat(Uint8Array.of(1), publicKey))}`;
    const origins = Array.isArray(doc.origins) ? doc.origins : null;
    return { name, publicKey, keyId, verifierKey, origins, fingerprint: hex(await sha256(publicKey)),
             consistent: doc.verifier_key === undefined || doc.verifier_key === verifierKey };
  }

  async function openCheckpoint(key, note) { // returns {origin, size, root}; throws naming the flaw
    if (typeof note !== "string" || !note) throw new Error("the proof carries no signed checkpoint");
    if (!key.consistent) throw new Error("the key document's verifier key does not match its name and key");
    const split = note.lastIndexOf("\n\n");
    if (split < 0 || !note.endsWith("\n")) throw new Error("malformed note: no signature block");
    const body = note.slice(0, split + 1);
    const prefix = `${SIGNATURE_PREFIX}${key.name} `;
    const raw = note.slice(split + 2, -1).split("\n")  // other keys' signature lines are ignored
      .filter((l) => l.startsWith(prefix)).map((l) => b64decode(l.slice(prefix.length)))
      .find((r) => r && r.length > 4 && sameBytes(r.slice(0, 4), key.keyId));
    if (!raw) throw new Error(`unknown key: the checkpoint has no signature by ${key.name}+${hex(key.keyId)}`);
    if (raw.length !== 4 + 64) throw new Error("bad signature: wrong Ed25519 signature length");
    let cryptoKey;
    try {
      cryptoKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      throw new Error("this browser cannot verify Ed25519 signatures; try a current browser");
    }
    if (!await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, raw.slice(4), utf8.encode(body))) {
      throw new Error(`bad signature: the checkpoint was not signed by ${key.name} (key ID ${hex(key.keyId)})`);
    }
    const [origin, sizeText, rootText] = body.slice(0, -1).split("\n");
    const root = b64decode(rootText || "");
    if (!origin || !/^(0|[1-9][0-9]*)$/.test(sizeText || "") || !root || root.length !== 32) {
      throw new Error("malformed checkpoint text");
    }
    return { origin, size: BigInt(sizeText), root };
  }

  // ---- the checks, in the order of the Python reference verifier ---------------------------------
  const check = (id, ok, detail) => ({ id, ok, detail });
  const stable = (v) => Array.isArray(v) ? `[${v.map(stable).join(",")}]`
    : v && typeof v === "object" ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(",")}}`
    : JSON.stringify(v === undefined ? null : v);

  async function verifyBundle(bundle, key, page) {
    let record;
    try { record = JSON.parse(bundle.record); } catch (e) { record = null; }
    if (!record || typeof record !== "object") return [check("code", false, "the proof has no readable record")];
    const checks = [check("code", record.code === page.code, `record names ${record.code}; this page is for ${page.code}`)];
    const differing = Object.keys(page.receipt).filter(
      (k) => stable(page.receipt[k]) !== stable((record.document || {})[k]));
    checks.push(check("receipt", differing.length === 0, differing.length === 0
      ? "the recorded sale is the one shown above"
      : `the recorded sale differs from the one shown above in: ${differing.join(", ")}`));
    const seq = Number.isSafeInteger(record.seq) ? record.seq : NaN;
    checks.push(check("position", bundle.shard === record.shard && bundle.leaf_index === seq - 1,
      `record is shard ${record.shard} no. ${record.seq}; proof is for shard ${bundle.shard} leaf ${bundle.leaf_index}`));
    const leaf = await leafHash(utf8.encode(bundle.record));
    const claimed = [[bundle.leaf_hash, "the proof"], [page.leafHash, "this receipt's ledger entry"]]
      .filter(([h]) => h !== undefined && h !== null && h !== "" && h !== hex(leaf));
    checks.push(check("leaf", claimed.length === 0, `SHA-256(0x00 \u2016 record) = ${hex(leaf)}` +
      claimed.map(([h, who]) => `; ${who} says ${h}`).join("")));
    checks.push(...await checkpointChecks(bundle, key, record.shard));
    checks.push(await inclusionCheck(bundle, leaf));
    return checks;
  }

  async function checkpointChecks(bundle, key, shard) {
    let cp;
    try {
      cp = await openCheckpoint(key, bundle.checkpoint);
      if (!cp.origin.endsWith(`/${shard}`)) throw new Error(`origin ${cp.origin} is not the log of shard ${shard}`);
      if (key.origins && !key.origins.includes(cp.origin)) throw new Error(`origin ${cp.origin} is not one of the operator's logs`);
    } catch (e) {
      return [check("checkpoint", false, e.message), check("tree-head", false, "no verified checkpoint to compare with")];
    }
    const same = cp.size === BigInt(Number.isSafeInteger(bundle.tree_size) ? bundle.tree_size : -1)
      && hex(cp.root) === bundle.root_hash;
    return [
      check("checkpoint", true, `signed by ${key.name} for ${cp.origin}`),
      check("tree-head", same, `checkpoint: ${cp.size} leaves, root ${hex(cp.root)}` +
        (same ? "" : `; proof: ${bundle.tree_size} leaves, root ${bundle.root_hash}`)),
    ];
  }

  async function inclusionCheck(bundle, leaf) {
    const proof = Array.isArray(bundle.inclusion_proof) ? bundle.inclusion_proof.map(fromHex32) : [null];
    const root = fromHex32(bundle.root_hash);
    const ints = Number.isSafeInteger(bundle.leaf_index) && Number.isSafeInteger(bundle.tree_size);
    const ok = ints && root !== null && !proof.includes(null)
      && await verifyInclusion(leaf, BigInt(bundle.leaf_index), BigInt(bundle.tree_size), proof, root);
    return check("inclusion", ok, `leaf ${bundle.leaf_index} in a tree of ${bundle.tree_size} leaves ` +
      `(${proof.length} hashes, RFC 9162 \u00a72.1.3.2)`);
  }

  // ---- C2SP tlog-tiles: the same bundle, rebuilt from static tiles (docs/verification.md §6a) -----
  // Only the signed checkpoint is trusted: every hash the tiles give is checked against its root
  // by the inclusion check, and the record must name this page's code.
  const TILE_WIDTH = 256;
  const TILE_HEIGHT = 8;
  const indexPath = (n) => { // 1234067 -> x001/x234/067
    const groups = [n % 1000];
    for (n = Math.floor(n / 1000); n > 0; n = Math.floor(n / 1000)) groups.unshift(n % 1000);
    return groups.map((g, i) => (i < groups.length - 1 ? "x" : "") + String(g).padStart(3, "0")).join("/");
  };
  const largestPowerOfTwoBelow = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; };

  class TileReader {
    constructor(base, shard, size) {
      this.base = base; this.shard = shard; this.size = size; this.tiles = new Map();
    }

    tilePath(level, index, entries) { // the full or partial tile holding hash `index` of `level`
      const count = Math.floor(this.size / TILE_WIDTH ** level);
      if (!(index >= 0 && index < count)) throw new Error(`a tree of ${this.size} leaves has no hash ${index} at tile level ${level}`);
      const n = Math.floor(index / TILE_WIDTH);
      const width = (n + 1) * TILE_WIDTH <= count ? TILE_WIDTH : count % TILE_WIDTH;
      return `${this.base}/${this.shard}/tile/${entries ? "entries" : level}/${indexPath(n)}` +
        (width === TILE_WIDTH ? "" : `.p/${width}`);
    }

    async bytes(path) {
      if (!this.tiles.has(path)) {
        this.tiles.set(path, (async () => {
          const response = await fetch(path, { credentials: "same-origin" });
          if (response.status !== 200) throw new Error(`${path}: HTTP ${response.status}`);
          return new Uint8Array(await response.arrayBuffer());
        })());
      }
      return this.tiles.get(path);
    }

    async record(leafIndex) { // the leaf's bytes, from its entry bundle
      const data = await this.bytes(this.tilePath(0, leafIndex, true));
      const wanted = leafIndex % TILE_WIDTH;
      for (let at = 0, i = 0; at + 2 <= data.length; i++) {
        const length = (data[at] << 8) | data[at + 1];
        if (at + 2 + length > data.length) break;
        if (i === wanted) return data.slice(at + 2, at + 2 + length);
        at += 2 + length;
      }
      throw new Error(`the entry bundle of leaf ${leafIndex} does not hold it`);
    }

    async tileHash(level, index) { // hash `index` at tlog level 8·level
      const data = await this.bytes(this.tilePath(level, index, false));
      const at = (index % TILE_WIDTH) * 32;
      if (at + 32 > data.length) throw new Error(`tile level ${level} is too short for hash ${index}`);
      return data.slice(at, at + 32);
    }

    async subtree(height, index) { // the complete subtree of 2^height leaves number `index`
      const level = Math.floor(height / TILE_HEIGHT), below = height % TILE_HEIGHT;
      let layer = [];
      for (let k = 0; k < 2 ** below; k++) layer.push(await this.tileHash(level, index * 2 ** below + k));
      while (layer.length > 1) {
        const next = [];
        for (let i = 0; i < layer.length; i += 2) next.push(await nodeHash(layer[i], layer[i + 1]));
        layer = next;
      }
      return layer[0];
    }

    async rangeHash(lo, hi) { // MTH(D[lo:hi]), RFC 9162 §2.1.1, from the fewest tile hashes
      const n = hi - lo;
      const height = Math.round(Math.log2(n));
      if (2 ** height === n && lo % n === 0) return this.subtree(height, lo / n);
      const k = largestPowerOfTwoBelow(n);
      return nodeHash(await this.rangeHash(lo, lo + k), await this.rangeHash(lo + k, hi));
    }

    async inclusionProof(m, lo = 0, hi = this.size) { // RFC 9162 §2.1.3.1, leaf first
      if (hi - lo <= 1) return [];
      const k = largestPowerOfTwoBelow(hi - lo);
      if (m < lo + k) return [...await this.inclusionProof(m, lo, lo + k), await this.rangeHash(lo + k, hi)];
      return [...await this.inclusionProof(m, lo + k, hi), await this.rangeHash(lo, lo + k)];
    }
  }

  async function tileBundle(base, shard, seq, key) { // {status, body} like the proof API's answer
    const checkpointUrl = `${base}/${shard}/checkpoint`;
    const response = await fetch(checkpointUrl, { cache: "no-store", credentials: "same-origin" });
    if (response.status !== 200) return { status: response.status, body: null };
    const note = await response.text();
    let size;
    try { size = Number((await openCheckpoint(key, note)).size); } catch (e) {
      return { status: 200, body: { shard, leaf_index: seq - 1, tree_size: -1, root_hash: "", record: "",
        inclusion_proof: [], checkpoint: note } }; // the checkpoint check then says what is wrong
    }
    if (!(seq >= 1 && seq <= size)) return { status: 404, body: null }; // not yet in a checkpoint
    const cp = await openCheckpoint(key, note);
    const tiles = new TileReader(base, shard, size);
    const record = new TextDecoder("utf-8", { fatal: true }).decode(await tiles.record(seq - 1));
    const proof = await tiles.inclusionProof(seq - 1);
    return { status: 200, body: { shard, leaf_index: seq - 1, tree_size: size, root_hash: hex(cp.root),
      record, inclusion_proof: proof.map(hex), checkpoint: note } };
  }

  async function fetchTileBundle(base, shard, seq, key) { // waits while the receipt is not in a checkpoint
    for (let attempt = 1; ; attempt++) {
      const answer = await tileBundle(base, shard, seq, key);
      if (answer.status !== 404) return answer;
      if (attempt >= RETRY_MAX) return answer;
      setVerdict("waiting", `Accepted, not yet in a signed checkpoint of the log. Checking again in ` +
        `${RETRY_DELAY_MS / 1000} s (attempt ${attempt + 1} of ${RETRY_MAX})\u2026`);
      await sleep(RETRY_DELAY_MS);
    }
  }

  // ---- the page ----------------------------------------------------------------------------------
  function setVerdict(status, text, failed = []) {
    const v = $("verdict");
    v.dataset.status = status;
    v.dataset.failed = failed.join(" ");
    v.textContent = text;
  }

  function showSteps(checks) {
    const list = $("steps");
    list.replaceChildren(...checks.map((c) => {
      const li = document.createElement("li");
      li.className = c.ok ? "ok" : "bad";
      li.dataset.step = c.id;
      li.dataset.ok = String(c.ok);
      const mark = Object.assign(document.createElement("span"), { className: "mark", textContent: c.ok ? "\u2713" : "\u2717" });
      mark.setAttribute("aria-hidden", "true");
      const name = Object.assign(document.createElement("strong"), { textContent: LABELS[c.id] || c.id });
      const state = Object.assign(document.createElement("span"), { className: "sr", textContent: c.ok ? " passed: " : " FAILED: " });
      const detail = Object.assign(document.createElement("span"), { className: "detail", textContent: c.detail });
      li.append(mark, name, state, detail);
      return li;
    }));
  }

  function fail(id, detail) {
    showSteps([check(id, false, detail)]);
    setVerdict("failed", `Not verified: ${LABELS[id]} failed.`, [id]);
  }

  function showKey(key) {
    $("key-name").textContent = key.name;
    $("key-id").textContent = hex(key.keyId);
    $("key-fingerprint").textContent = key.fingerprint.match(/..../g).join(" ");
    $("verifier-key").textContent = key.verifierKey;
    $("key").hidden = false;
  }

  function sameOrigin(text) {
    const url = new URL(text, location.href);
    if (url.origin !== location.origin) throw new Error(`${text} is not on this site`);
    return url;
  }

  async function getJson(url) { // {status, body}; throws on network or JSON errors
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    return { status: response.status, body: response.status === 200 ? await response.json() : null };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function fetchBundle(url) { // waits while the receipt is not yet in a signed checkpoint
    for (let attempt = 1; ; attempt++) {
      const { status, body } = await getJson(url);
      if (status !== 404) return { status, body };
      if (attempt >= RETRY_MAX) return { status, body: null };
      setVerdict("waiting", `Accepted, not yet in a signed checkpoint of the log. Checking again in ` +
        `${RETRY_DELAY_MS / 1000} s (attempt ${attempt + 1} of ${RETRY_MAX})\u2026`);
      await sleep(RETRY_DELAY_MS);
    }
  }

  function pageCode(section) { // the code the customer scanned or typed, normalized like the server
    const last = location.pathname.startsWith("/r/") ? decodeURIComponent(location.pathname.slice(3)) : "";
    const text = (last || section.dataset.code).toUpperCase().replace(/[-\s]/g, "");
    return text.replace(/[IL]/g, "1").replace(/O/g, "0");
  }

  async function main() {
    const section = $("verify");
    const page = {
      code: pageCode(section),
      leafHash: section.dataset.leafHash || null,
      receipt: JSON.parse($("receipt-data").textContent),
    };
    if (!window.crypto || !crypto.subtle) {
      return fail("browser", "this page needs a secure (https) connection to use the browser's cryptography");
    }
    const params = new URLSearchParams(location.search);
    // The static tiles by default (what a CDN serves), when the page knows the receipt's place;
    // ?bundle= asks the proof API instead (or any same-origin bundle), ?tiles= another tile base.
    const shard = Number(section.dataset.shard), seq = Number(section.dataset.seq);
    const useTiles = !params.get("bundle") && Number.isSafeInteger(shard) && Number.isSafeInteger(seq)
      && section.dataset.tiles;
    let bundleUrl, keyUrl, tilesUrl;
    try {
      keyUrl = sameOrigin(params.get("key") || DEFAULT_KEY_URL);
      if (useTiles) {
        tilesUrl = sameOrigin(params.get("tiles") || section.dataset.tiles);
      } else {
        bundleUrl = sameOrigin(params.get("bundle") || `/v1/receipts/${encodeURIComponent(page.code)}/proof`);
      }
    } catch (e) {
      return fail("download", e.message);
    }
    const source = useTiles ? `the tiles under ${tilesUrl.pathname}/${shard}/` : `${bundleUrl.pathname}${bundleUrl.search}`;
    $("sources").textContent = `${source} and ${keyUrl.pathname}${keyUrl.search}`;
    section.dataset.source = useTiles ? "tiles" : "bundle";
    let key, bundle;
    try {
      const keyDoc = await getJson(keyUrl);
      if (keyDoc.status !== 200) return fail("download", `the log key: HTTP ${keyDoc.status}`);
      key = await readKey(keyDoc.body);
      showKey(key);
      bundle = useTiles ? await fetchTileBundle(tilesUrl.pathname.replace(/\/$/, ""), shard, seq, key)
        : await fetchBundle(bundleUrl);
    } catch (e) {
      return fail("download", e.message);
    }
    if (bundle.status === 404) {
      return setVerdict("pending", "Accepted, not yet in a signed checkpoint of the log. Reload this page in a minute.");
    }
    if (bundle.status !== 200) return fail("download", `the proof: HTTP ${bundle.status}`);
    const checks = await verifyBundle(bundle.body, key, page);
    showSteps(checks);
    const failed = checks.filter((c) => !c.ok).map((c) => c.id);
    if (failed.length === 0) {
      setVerdict("verified", "Verified: this receipt is recorded unchanged in the operator's signed log.");
    } else {
      setVerdict("failed", `Not verified: ${failed.map((id) => LABELS[id]).join(", ")} failed.`, failed);
    }
  }

  main().catch((e) => fail("browser", `unexpected error: ${e.message}`));
})();
