// Shared by every Cocoon dashboard (spliced in by cocoon-net's dashboard.rs), in its own
// <script> block before the page's, so that an error in the page's script is reported too.
//
// Every string put in the page goes through textContent or setAttribute, never parsed as markup:
// model names, addresses and error texts come from peers and from the network.
"use strict";

window.addEventListener("error", (event) => Cocoon.fail(event.message || String(event.error)));
window.addEventListener("unhandledrejection", (event) => Cocoon.fail(String(event.reason)));

const Cocoon = (() => {
  /** How often /stats is fetched. */
  const REFRESH_MS = 2000;
  /** A client with api_token wants it on /stats too: open the page as /#token=<api_token>
   *  (a fragment never leaves the browser). */
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  let lastOk = null;

  const byId = (id) => document.getElementById(id);

  /** A new element with a class and text (as text, never markup). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** Sets an element's text; null and undefined show as a dash. */
  function setText(id, text) {
    const node = byId(id);
    if (node) node.textContent = text === null || text === undefined ? "–" : String(text);
  }

  /** A JS error in the page: recorded as the body's data-error attribute (the headless test reads
   *  it) and shown. */
  function fail(message) {
    document.body.setAttribute("data-error", String(message).slice(0, 500));
    const banner = byId("banner");
    banner.textContent = "Dashboard error: " + String(message).slice(0, 500);
    banner.style.display = "block";
  }

  // ------------------------------------------------------------------ formatting

  const isNum = (n) => n !== null && n !== undefined && n !== "" && Number.isFinite(Number(n));
  const num = (n) => (isNum(n) ? Number(n).toLocaleString("en-US") : "–");

  /** nano-TON as TON (nine decimals, trailing zeros dropped); below 0.001 TON as nano-TON,
   *  which reads better for the devnet's tiny prices. */
  function ton(nano) {
    if (!isNum(nano)) return "–";
    const n = Number(nano);
    // A non-breaking hyphen: "nano-" alone at the end of a line reads badly.
    if (n !== 0 && Math.abs(n) < 1e6) return num(n) + " nano\u2011TON";
    return (n / 1e9).toFixed(9).replace(/0+$/, "").replace(/\.$/, "") + " TON";
  }

  function duration(seconds) {
    if (!isNum(seconds)) return "–";
    let s = Math.floor(Number(seconds));
    if (s < 60) return s + " s";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    s %= 60;
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    return m + " min " + s + " s";
  }

  function ago(seconds) {
    return isNum(seconds) ? duration(seconds) + " ago" : "never";
  }

  function millis(ms) {
    if (!isNum(ms)) return "–";
    ms = Number(ms);
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(2) + " s";
  }

  function bytes(n) {
    if (!isNum(n)) return "–";
    n = Number(n);
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  /** A long hash or address shortened, the whole of it in the tooltip. */
  function short(text, keep = 8) {
    if (text === null || text === undefined || text === "") return { text: "–" };
    text = String(text);
    if (text.length <= keep * 2 + 3) return { text, mono: true };
    return { text: text.slice(0, keep) + "…" + text.slice(-6), title: text, mono: true };
  }

  // ------------------------------------------------------------------ building blocks

  /** Fills a cell from a value: a string or number, or {text, title, tone, mono, bar, tag}. */
  function fill(node, value) {
    const v = value !== null && typeof value === "object" ? value : { text: value };
    if (v.bar !== undefined) {
      const bar = el("span", "bar");
      const fillPart = el("i");
      fillPart.style.width = Math.max(0, Math.min(1, Number(v.bar) || 0)) * 100 + "%";
      bar.append(fillPart);
      node.append(bar);
    }
    const text = v.text === null || v.text === undefined || v.text === "" ? "–" : String(v.text);
    const span = el("span", [v.tag ? "tag" : "", v.tone || "", v.mono ? "mono" : ""].join(" ").trim(), text);
    if (v.title) span.setAttribute("title", String(v.title));
    node.append(span);
  }

  /** Big numbers: items [{label, value, sub, tone, title}]. */
  function cards(id, items) {
    const cells = items.map((item) => {
      const card = el("div", "card");
      card.append(el("div", "label", item.label));
      const value = el("div", "value" + (item.tone ? " " + item.tone : ""));
      fill(value, { text: item.value, title: item.title });
      card.append(value);
      if (item.sub !== undefined) card.append(el("div", "sub", item.sub));
      return card;
    });
    byId(id).replaceChildren(...cells);
  }

  /** A table: columns [{title, num, value: row => cell}], one row per element of rows. */
  function table(id, columns, rows, emptyText) {
    const head = el("tr");
    for (const column of columns) head.append(el("th", column.num ? "num" : "", column.title));
    const body = el("tbody");
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "empty", emptyText || "none");
      td.colSpan = columns.length;
      tr.append(td);
      body.append(tr);
    }
    for (const row of rows) {
      const tr = el("tr");
      for (const column of columns) {
        const td = el("td", column.num ? "num" : "");
        fill(td, column.value(row));
        tr.append(td);
      }
      body.append(tr);
    }
    const thead = el("thead");
    thead.append(head);
    const t = el("table");
    t.append(thead, body);
    byId(id).replaceChildren(t);
  }

  /** Label/value pairs: [[label, value], …] where value is as for a table cell. */
  function pairs(id, list) {
    const dl = el("dl", "kv");
    for (const [label, value] of list) {
      dl.append(el("dt", "", label));
      const dd = el("dd");
      fill(dd, value);
      dl.append(dd);
    }
    byId(id).replaceChildren(dl);
  }

  // ------------------------------------------------------------------ the refresh loop

  function showStatus(text) {
    setText("status", text);
  }

  /** Fetches /stats now and every REFRESH_MS; render(stats) draws it. When the daemon does not
   *  answer, the last data stays on the page (dimmed) and the banner says why. */
  function start(render) {
    setText("refresh", "Refreshes every " + REFRESH_MS / 1000 + " s from this daemon's /stats.");
    const tick = async () => {
      let stats;
      try {
        const headers = token ? { Authorization: "Bearer " + token } : {};
        const response = await fetch("/stats", { cache: "no-store", headers });
        if (!response.ok) {
          const hint = response.status === 401
            ? " (this client has an api_token: open this page as /#token=<api_token>)"
            : "";
          throw new Error("/stats answered HTTP " + response.status + hint);
        }
        stats = await response.json();
      } catch (error) {
        document.body.dataset.state = lastOk ? "stale" : "error";
        const when = lastOk ? "Showing the data of " + lastOk.toLocaleTimeString() + "." : "No data yet.";
        setText("banner", "Daemon unreachable: " + (error && error.message ? error.message : error) + ". " + when);
        showStatus(lastOk ? "unreachable · last data " + lastOk.toLocaleTimeString() : "unreachable");
        setTimeout(tick, REFRESH_MS);
        return;
      }
      try {
        render(stats);
        lastOk = new Date();
        document.body.dataset.state = "ok";
        showStatus("live · updated " + lastOk.toLocaleTimeString() + " · every " + REFRESH_MS / 1000 + " s");
      } catch (error) {
        fail(error && error.stack ? error.stack : error);
      }
      setTimeout(tick, REFRESH_MS);
    };
    tick();
  }

  return { el, setText, fail, num, ton, duration, ago, millis, bytes, short, cards, table, pairs, start };
})();
