// @ts-check
/**
 * The page's behaviour: ask through /v1/chat/completions (streamed), show the answer with
 * linked [n] markers and its sources (or, when the articles do not answer, the related
 * passages), open a source with the quote highlighted.
 *
 * The articles view lists the articles, uploads files (picker or drag and drop), deletes
 * them after a confirmation, and follows the index build that every change starts.
 *
 * No framework and no build step. Text from the server or the articles reaches the page only
 * as text nodes (Node.append / textContent), never as HTML.
 */
"use strict";

/**
 * @typedef {{id: number, doc: string, title: string, quote: string, start: number, end: number}} Citation
 * @typedef {{text: string, doc: string, start: number, end: number, score: number,
 *            resolved?: string|null}} ShortAnswer
 * @typedef {"answered"|"related"|"none"} Outcome
 * @typedef {{answerable: boolean, mode: string, route?: string|null, fallback_reason?: string|null,
 *            rewritten_question?: string|null, timings?: Record<string, number>,
 *            outcome?: Outcome, confidence?: number|null, short_answer?: ShortAnswer|null,
 *            related?: Citation[]}} RagInfo
 * @typedef {{id: string, title: string, date: string|null, text: string}} Doc
 * @typedef {{id: string, title: string, date: string|null, chunks: number,
 *            format?: string|null, encoding?: string|null}} Article
 * @typedef {{documents: Article[], total: number, offset: number, limit: number}} ArticlePage
 * @typedef {{state: "idle"|"building", progress: {done: number, total: number}|null,
 *            pending: boolean, skipped: {path: string, reason: string}[], error: string|null,
 *            editable: boolean, suffixes: string[],
 *            last_build: {documents: number, chunks: number, embedded: number, reused: number,
 *                         seconds: number, built_at: string}|null}} IndexStatus
 * @typedef {{question: string, answer: string, citations: Citation[], related: Citation[],
 *            short: Citation|null, done: boolean, failed: boolean, view: TurnView}} Turn
 */

const MODEL = "qianwen-rag";
const KEY_STORE = "qianwen-rag.api-key";
const MARKER = /\[(\d{1,3})\]/g;
/** @type {Record<string, string>} */
const MODE_LABELS = { auto: "自动", extractive: "摘录原文", llm: "大模型生成" };
/** Said under the answer text when the articles do not answer (same words as render.py). */
const NOTICES = {
  related: "以下是文章里与问题最相关的段落，仅供参考，它们并不直接回答这个问题：",
  none: "收录的文章里没有找到能回答这个问题的内容。",
};
/** @type {Record<Outcome, string>} */
const REPLY_STATES = { answered: "reply", related: "reply is-related", none: "reply is-unanswerable" };

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const conversationEl = byId("conversation");
const intro = byId("intro");
const form = /** @type {HTMLFormElement} */ (byId("ask-form"));
const input = /** @type {HTMLTextAreaElement} */ (byId("question"));
const send = /** @type {HTMLButtonElement} */ (byId("send"));
const modeSelect = /** @type {HTMLSelectElement|null} */ (document.getElementById("mode"));
const reader = /** @type {HTMLDialogElement} */ (byId("reader"));
const keyDialog = /** @type {HTMLDialogElement} */ (byId("key-dialog"));
const keyInput = /** @type {HTMLInputElement} */ (byId("key-input"));
const keyError = byId("key-error");
const needsKey = document.body.dataset.keys === "on";
const adminKeys = document.body.dataset.admin === "on";

const state = {
  /** @type {Turn[]} */ turns: [],
  busy: false,
  /** @type {AbortController|null} */ controller: null,
  /** @type {Map<string, Promise<Doc>>} */ docs: new Map(),
  readerToken: 0,
};

/**
 * Create an element. Children are nodes or strings; strings become text, never markup.
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {...(Node|string)} children
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// --- API key (kept in this tab's sessionStorage only) ----------------------------------------

let memoryKey = ""; // used when sessionStorage is unavailable (some private modes)
/** @type {((ok: boolean) => void)[]} */
let keyWaiters = [];

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return memoryKey;
  }
}

/** @param {string} key an empty key forgets it */
function storeKey(key) {
  memoryKey = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    /* memoryKey holds it */
  }
}

/** @param {Record<string, string>} [extra] */
function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** @param {string} message */
function showKeyError(message) {
  keyError.textContent = message;
  keyError.hidden = !message;
}

/**
 * Open the key dialog; resolves true once a working key is stored, false if dismissed.
 * @param {string} [message]
 * @returns {Promise<boolean>}
 */
function askForKey(message = "") {
  return new Promise((resolve) => {
    keyWaiters.push(resolve);
    showKeyError(message);
    if (!keyDialog.open) keyDialog.showModal();
    keyInput.focus();
  });
}

/** @param {boolean} ok */
function settleKeyWaiters(ok) {
  const waiters = keyWaiters;
  keyWaiters = [];
  for (const resolve of waiters) resolve(ok);
}

byId("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  showKeyError("正在验证…");
  let res;
  try {
    res = await fetch("/v1/models", { headers: { Authorization: `Bearer ${key}` } });
  } catch {
    showKeyError("无法连接服务器，请稍后再试。");
    return;
  }
  if (res.status === 401) {
    showKeyError("密钥无效，请检查后重试。");
    return;
  }
  storeKey(key);
  keyInput.value = "";
  showKeyError("");
  keyDialog.close();
});

keyDialog.addEventListener("close", () => settleKeyWaiters(Boolean(storedKey())));

byId("key-forget").addEventListener("click", () => {
  storeKey("");
  keyInput.value = "";
  showKeyError("密钥已从本标签页清除。");
});

// --- answers ------------------------------------------------------------------------------

/**
 * The answer text as nodes, with [n] markers as links once the citations are known.
 * @param {string} text
 * @param {string} turnId
 * @param {Citation[]|null} citations null while the answer is still streaming
 */
function answerNodes(text, turnId, citations) {
  const known = new Set((citations || []).map((c) => c.id));
  /** @type {(Node|string)[]} */
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const at = match.index ?? 0;
    const n = Number(match[1]);
    nodes.push(text.slice(last, at));
    if (known.has(n)) {
      const attrs = { class: "cite", href: `#${turnId}-src-${n}`, "data-turn": turnId };
      nodes.push(el("a", { ...attrs, "data-cite": String(n), title: "打开原文" }, match[0]));
    } else {
      nodes.push(citations ? match[0] : el("span", { class: "cite" }, match[0]));
    }
    last = at + match[0].length;
  }
  nodes.push(text.slice(last));
  return nodes;
}

/**
 * The list of sources under an answer: title (opens the article), date, quote. The related
 * passages of an unanswered question use the same list under their own heading.
 * @param {string} turnId
 * @param {Citation[]} citations
 * @param {"cite"|"related"} kind
 * @param {Citation|null} short the short answer, shown in bold inside the quote that holds it
 */
function sourcesList(turnId, citations, kind, short) {
  const heading = kind === "related" ? "相关段落" : "来源";
  const prefix = kind === "related" ? "rel" : "src";
  const items = citations.map((c) => {
    const date = el("span", { class: "date" });
    getDocument(c.doc).then(
      (doc) => {
        date.textContent = doc.date || "";
      },
      () => {}, // the date is optional; opening the source reports errors
    );
    const title = el(
      "button",
      {
        type: "button",
        class: "source-title",
        "data-turn": turnId,
        "data-kind": kind,
        "data-cite": String(c.id),
      },
      c.title,
    );
    return el(
      "li",
      { id: `${turnId}-${prefix}-${c.id}` },
      el("span", { class: "num" }, String(c.id)),
      el(
        "div",
        {},
        el("p", { class: "source-head" }, title, date),
        el("blockquote", { class: "quote" }, ...quoteNodes(c, short)),
      ),
    );
  });
  return el(
    "section",
    { class: kind === "related" ? "sources related" : "sources", "aria-label": heading },
    el("h2", {}, heading),
    el("ol", {}, ...items),
  );
}

/**
 * A quote as nodes, with the short answer in bold when this quote holds it.
 * @param {Citation} c
 * @param {Citation|null} short
 */
function quoteNodes(c, short) {
  if (!short || !contains(c, short)) return [c.quote];
  const start = utf16Index(c.quote, 0, 0, short.start - c.start);
  const end = utf16Index(c.quote, start, short.start - c.start, short.end - c.start);
  if (c.quote.slice(start, end) !== short.quote) return [c.quote];
  const span = el("strong", { class: "span" }, c.quote.slice(start, end));
  return [c.quote.slice(0, start), span, c.quote.slice(end)];
}

/**
 * Whether citation `outer` covers the words of `inner`.
 * @param {Citation} outer
 * @param {Citation} inner
 */
function contains(outer, inner) {
  return outer.doc === inner.doc && outer.start <= inner.start && inner.end <= outer.end;
}

/**
 * The short answer as a citation of its own (id 0), so the reader can open it like one.
 * @param {ShortAnswer} short
 * @param {Citation[]} citations
 * @returns {Citation}
 */
function shortCitation(short, citations) {
  const holder = citations.find((c) => c.doc === short.doc);
  const title = holder ? holder.title : short.doc;
  const { doc, start, end } = short;
  return { id: 0, doc, title, quote: short.text, start, end };
}

/**
 * The short answer line: the words in bold (they open the source), and a relative date
 * restated when there is one.
 * @param {string} turnId
 * @param {ShortAnswer} short
 */
function shortAnswerLine(turnId, short) {
  const attrs = { class: "short-link", href: `#${turnId}-short`, title: "打开原文" };
  const link = el(
    "a",
    { ...attrs, "data-turn": turnId, "data-kind": "short", "data-cite": "0" },
    el("strong", {}, short.text),
  );
  const parts = [el("span", { class: "short-label" }, "答"), link];
  if (short.resolved) parts.push(" ", el("span", { class: "resolved" }, `即 ${short.resolved}`));
  return el("p", { class: "short-answer" }, ...parts);
}

/** @param {RagInfo} rag */
function metaLine(rag) {
  const label = MODE_LABELS[rag.mode] || rag.mode;
  const parts = [rag.route ? `自动选择：${label}` : label];
  if (rag.fallback_reason) parts.push("大模型不可用，已改为摘录原文");
  if (typeof rag.confidence === "number") parts.push(`置信度 ${rag.confidence.toFixed(2)}`);
  const total = rag.timings?.total;
  if (typeof total === "number") parts.push(`用时 ${total.toFixed(2)} 秒`);
  return parts.join(" · ");
}

/** One question and its reply on the page. */
class TurnView {
  /**
   * @param {string} id
   * @param {string} question
   */
  constructor(id, question) {
    this.id = id;
    this.answerEl = el("div", { class: "answer" });
    this.reply = el("div", { class: "reply", "aria-live": "polite" });
    this.root = el(
      "article",
      { class: "turn", id },
      el("div", { class: "question" }, el("p", {}, question)),
      this.reply,
    );
  }

  thinking() {
    this.answerEl.replaceChildren();
    this.reply.className = "reply is-thinking";
    this.reply.replaceChildren(this.answerEl, el("p", { class: "status" }, "正在查找相关文章"));
  }

  /** @param {string} text the answer so far */
  streaming(text) {
    if (!this.reply.classList.contains("is-streaming")) {
      this.reply.className = "reply is-streaming";
      this.reply.replaceChildren(this.answerEl);
    }
    this.answerEl.replaceChildren(...answerNodes(text, this.id, null));
  }

  /**
   * @param {Turn} turn
   * @param {RagInfo} rag
   */
  done(turn, rag) {
    const outcome = outcomeOf(rag);
    /** @type {Node[]} */
    const parts = [];
    if (rag.rewritten_question) {
      parts.push(el("p", { class: "rewrite" }, `按“${rag.rewritten_question}”理解`));
    }
    if (outcome === "answered" && rag.short_answer) {
      parts.push(shortAnswerLine(this.id, rag.short_answer));
    }
    this.answerEl.replaceChildren(...answerNodes(turn.answer, this.id, turn.citations));
    parts.push(this.answerEl);
    if (outcome !== "answered") parts.push(el("p", { class: "notice" }, NOTICES[outcome]));
    if (outcome === "answered" && turn.citations.length) {
      parts.push(sourcesList(this.id, turn.citations, "cite", turn.short));
    }
    if (outcome === "related" && turn.related.length) {
      parts.push(sourcesList(this.id, turn.related, "related", null));
    }
    parts.push(el("p", { class: "meta" }, metaLine(rag)));
    this.reply.className = REPLY_STATES[outcome];
    this.reply.replaceChildren(...parts);
  }

  /**
   * @param {string} message
   * @param {() => void} retry
   */
  failed(message, retry) {
    const button = el("button", { type: "button", class: "ghost retry" }, "重试");
    button.addEventListener("click", retry);
    this.reply.className = "reply is-error";
    this.reply.replaceChildren(el("p", { class: "notice", role: "alert" }, message), button);
  }
}

/**
 * The answer's outcome; an abstaining answer from a server without outcomes is "none".
 * @param {RagInfo} rag
 * @returns {Outcome}
 */
function outcomeOf(rag) {
  const outcome = rag.outcome || "answered";
  return outcome === "answered" && !rag.answerable ? "none" : outcome;
}

/**
 * @param {Response} res
 * @param {string} [prefix] what failed, in front of the server's message
 */
async function errorMessage(res, prefix = "服务器出错") {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return `${prefix}：${body.error.message}`;
  } catch {
    /* not JSON */
  }
  return `${prefix}（HTTP ${res.status}）。`;
}

/**
 * The conversation so far (finished turns only) followed by this turn's question.
 * @param {Turn} turn
 */
function messagesFor(turn) {
  const messages = [];
  for (const t of state.turns) {
    if (t === turn) break;
    if (!t.done) continue;
    messages.push({ role: "user", content: t.question }, { role: "assistant", content: t.answer });
  }
  messages.push({ role: "user", content: turn.question });
  return messages;
}

/**
 * Read server-sent events, calling onData with each parsed `data:` payload.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(data: any) => void} onData
 * @returns {Promise<boolean>} true when the stream ended with [DONE]
 */
async function readEvents(body, onData) {
  const stream = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await stream.read();
    if (done) return false;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trim())
        .join("\n");
      if (data === "[DONE]") return true;
      if (data) onData(JSON.parse(data));
    }
  }
}

/**
 * @param {Turn} turn
 * @param {any} chunk one OpenAI chat.completion.chunk (or an in-band error)
 */
function onChunk(turn, chunk) {
  if (chunk.error) {
    turn.failed = true;
    turn.view.failed(`服务器出错：${chunk.error.message || "未知错误"}`, () => retry(turn));
    return;
  }
  const delta = chunk.choices?.[0]?.delta?.content;
  if (delta) {
    turn.answer += delta;
    turn.view.streaming(turn.answer);
  }
  if (chunk.rag) {
    /** @type {RagInfo} */
    const rag = chunk.rag;
    turn.citations = chunk.citations || [];
    turn.related = outcomeOf(rag) === "related" ? rag.related || [] : [];
    turn.short = rag.short_answer ? shortCitation(rag.short_answer, turn.citations) : null;
    turn.done = true;
    turn.view.done(turn, rag);
  }
  keepInView();
}

/**
 * @param {Record<string, unknown>} payload
 * @param {AbortSignal} signal
 */
function postChat(payload, signal) {
  return fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(payload),
    signal,
  });
}

/** @param {boolean} busy */
function setBusy(busy) {
  state.busy = busy;
  send.disabled = busy;
}

/** @param {Turn} turn */
function retry(turn) {
  if (!state.busy) run(turn);
}

/**
 * Ask (or ask again) one turn's question, streaming the reply into its view.
 * @param {Turn} turn
 */
async function run(turn) {
  Object.assign(turn, {
    answer: "",
    citations: [],
    related: [],
    short: null,
    done: false,
    failed: false,
  });
  turn.view.thinking();
  setBusy(true);
  const controller = new AbortController();
  state.controller = controller;
  /** @type {Record<string, unknown>} */
  const payload = { model: MODEL, stream: true, messages: messagesFor(turn) };
  if (modeSelect) payload.mode = modeSelect.value;
  try {
    let res = await postChat(payload, controller.signal);
    if (res.status === 401 && needsKey) {
      storeKey("");
      if (await askForKey("需要有效的 API 密钥才能提问。")) {
        res = await postChat(payload, controller.signal);
      }
    }
    if (!res.ok || !res.body) {
      turn.view.failed(await errorMessage(res), () => retry(turn));
      return;
    }
    const finished = await readEvents(res.body, (chunk) => onChunk(turn, chunk));
    if (!turn.done && !turn.failed) {
      const message = finished ? "服务器没有返回完整的回答。" : "连接中断，回答不完整。";
      turn.view.failed(message, () => retry(turn));
    }
  } catch (err) {
    if (controller.signal.aborted) return;
    const message =
      err instanceof SyntaxError
        ? "服务器返回了无法解析的数据。"
        : navigator.onLine
          ? "无法连接到服务器，请稍后重试。"
          : "网络已断开，请检查网络后重试。";
    turn.view.failed(message, () => retry(turn));
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

function keepInView() {
  const root = document.documentElement;
  if (root.scrollHeight - window.scrollY - window.innerHeight < 240) {
    window.scrollTo({ top: root.scrollHeight });
  }
}

/** @param {string} question */
function ask(question) {
  const turn = /** @type {Turn} */ ({ question, answer: "", citations: [], related: [], done: false });
  turn.view = new TurnView(`c${state.turns.length + 1}`, question);
  state.turns.push(turn);
  intro.hidden = true;
  conversationEl.append(turn.view.root);
  window.scrollTo({ top: document.documentElement.scrollHeight });
  run(turn);
}

function newConversation() {
  state.controller?.abort();
  state.controller = null;
  setBusy(false);
  state.turns = [];
  state.docs.clear(); // the index may have been rebuilt since
  conversationEl.replaceChildren(intro);
  intro.hidden = false;
  input.value = "";
  autosize();
  input.focus();
}

// --- sources ------------------------------------------------------------------------------

/**
 * One article, fetched once and cached.
 * @param {string} id
 * @returns {Promise<Doc>}
 */
function getDocument(id) {
  let doc = state.docs.get(id);
  if (!doc) {
    const path = id.split("/").map(encodeURIComponent).join("/");
    doc = fetch(`/api/documents/${path}`, { headers: headers() }).then(async (res) => {
      if (!res.ok) throw new Error(await errorMessage(res));
      return res.json();
    });
    doc.catch(() => state.docs.delete(id)); // try again next time
    state.docs.set(id, doc);
  }
  return doc;
}

/**
 * Offsets count Unicode code points (Python strings); JavaScript strings count UTF-16 units.
 * @param {string} text
 * @param {number} from UTF-16 index to start at
 * @param {number} fromPoint the code point index at `from`
 * @param {number} point the code point index wanted
 */
function utf16Index(text, from, fromPoint, point) {
  let i = from;
  for (let p = fromPoint; p < point && i < text.length; p++) {
    i += /** @type {number} */ (text.codePointAt(i)) > 0xffff ? 2 : 1;
  }
  return i;
}

/**
 * Where a citation's quote is in the text (by its offsets, or by search if the article
 * changed since the answer was written); null when it is gone.
 * @param {string} text
 * @param {Citation} c
 */
function locate(text, c) {
  const start = utf16Index(text, 0, 0, c.start);
  const end = utf16Index(text, start, c.start, c.end);
  if (text.slice(start, end) === c.quote) return { start, end };
  const found = text.indexOf(c.quote);
  return found < 0 ? null : { start: found, end: found + c.quote.length };
}

/**
 * The article text with this answer's quotes from it marked, the chosen one as "current".
 * When the chosen range lies inside one of the quotes (the short answer in its sentence),
 * that quote is marked too, with the chosen words marked within it.
 * @param {string} text
 * @param {Citation} current
 * @param {Citation[]} siblings all citations of the same answer
 */
function highlighted(text, current, siblings) {
  const here = locate(text, current);
  const others = siblings
    .filter((c) => c !== current && c.doc === current.doc)
    .map((c) => ({ r: locate(text, c), c }));
  const holder = others.find(
    ({ r }) => here && r && r.start <= here.start && here.end <= r.end,
  );
  /** @type {{start: number, end: number, c: Citation}[]} */
  const ranges = [];
  if (holder?.r) ranges.push({ ...holder.r, c: holder.c });
  else if (here) ranges.push({ ...here, c: current });
  for (const { r, c } of others) {
    if (r && ranges.every((o) => r.end <= o.start || r.start >= o.end)) ranges.push({ ...r, c });
  }
  ranges.sort((a, b) => a.start - b.start);
  /** @type {(Node|string)[]} */
  const nodes = [];
  /** @type {HTMLElement|null} */
  let mark = null;
  let pos = 0;
  for (const r of ranges) {
    nodes.push(text.slice(pos, r.start));
    const title = `[${r.c.id}]`;
    if (r.c === current) {
      mark = el("mark", { class: "current", title }, text.slice(r.start, r.end));
      nodes.push(mark);
    } else if (here && r.c === holder?.c) {
      mark = el("mark", { class: "current" }, text.slice(here.start, here.end));
      const around = [text.slice(r.start, here.start), mark, text.slice(here.end, r.end)];
      nodes.push(el("mark", { class: "holder", title }, ...around));
    } else {
      nodes.push(el("mark", { title }, text.slice(r.start, r.end)));
    }
    pos = r.end;
  }
  nodes.push(text.slice(pos));
  return { nodes, mark };
}

/**
 * Open the article behind a citation with its quote highlighted and scrolled into view.
 * @param {Citation} citation
 * @param {Citation[]} siblings
 * @param {string} kicker what the citation is, shown above the title
 */
async function openReader(citation, siblings, kicker) {
  const token = ++state.readerToken;
  const body = byId("reader-body");
  byId("reader-kicker").textContent = kicker;
  byId("reader-title").textContent = citation.title;
  byId("reader-date").textContent = "";
  body.replaceChildren(el("p", { class: "status" }, "正在打开原文"));
  if (!reader.open) reader.showModal();
  let doc;
  try {
    doc = await getDocument(citation.doc);
  } catch (err) {
    if (token !== state.readerToken) return;
    const reason = err instanceof Error ? err.message : String(err);
    body.replaceChildren(el("p", { class: "notice", role: "alert" }, `无法打开原文。${reason}`));
    return;
  }
  if (token !== state.readerToken) return;
  byId("reader-title").textContent = doc.title;
  byId("reader-date").textContent = doc.date || "";
  const { nodes, mark } = highlighted(doc.text, citation, siblings);
  body.replaceChildren(...nodes);
  body.scrollTop = 0;
  if (mark) mark.scrollIntoView({ block: "center" });
  else body.prepend(el("p", { class: "notice" }, "文章已更新，找不到这段引文。"));
}

// --- articles -----------------------------------------------------------------------------

const articlesDialog = /** @type {HTMLDialogElement} */ (byId("articles"));
const articlesButton = byId("articles-button");
const fileInput = /** @type {HTMLInputElement} */ (byId("file-input"));
const dropZone = byId("drop-zone");
const uploadMessage = byId("upload-message");
const buildProgress = /** @type {HTMLProgressElement} */ (byId("build-progress"));
const POLL_MS = 400;
const INTRO_ARTICLES = 10; // the start page lists the newest ones (render.py INTRO_ARTICLES)
const ARTICLE_PAGE = 100; // articles fetched at a time (the server's default page)
const moreArticles = byId("articles-more");
const library = { polling: false, editable: true, shown: 0, total: 0 };

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Date, chunk count, format and encoding (the same words as render.py article_meta).
 * @param {Article} a
 */
function articleMeta(a) {
  const parts = [a.date || "无日期", `${a.chunks} 段`];
  for (const value of [a.format, a.encoding]) if (value) parts.push(value);
  return parts.join(" · ");
}

/**
 * @param {string} message
 * @param {boolean} [error]
 */
function say(message, error = false) {
  uploadMessage.textContent = message;
  uploadMessage.hidden = !message;
  uploadMessage.classList.toggle("is-error", error);
}

/**
 * A change (upload, delete), asking for an admin key when the server wants one.
 * @param {string} url
 * @param {RequestInit} init
 */
async function change(url, init) {
  let res = await fetch(url, { ...init, headers: headers() });
  if ((res.status === 401 || res.status === 403) && (needsKey || adminKeys)) {
    if (res.status === 403) storeKey("");
    if (await askForKey("修改文章需要管理员密钥。")) {
      res = await fetch(url, { ...init, headers: headers() });
    }
  }
  return res;
}

/**
 * The first page of articles (the server lists them newest first, undated last): the start
 * page's newest few, the count, and the articles view from the top.
 * @param {ArticlePage} page
 */
function renderArticles(page) {
  const docs = page.documents;
  byId("library-line").textContent = `已收录 ${page.total} 篇文章。`;
  const intro = docs.slice(0, INTRO_ARTICLES).map((a) =>
    el(
      "li",
      { "data-id": a.id },
      el("span", { class: "article-title" }, a.title),
      el("span", { class: "article-meta" }, articleMeta(a)),
    ),
  );
  const more = page.total - INTRO_ARTICLES;
  if (more > 0) intro.push(el("li", { class: "more" }, `另有 ${more} 篇`));
  document.getElementById("article-list")?.replaceChildren(...intro);
  byId("articles-list").replaceChildren(...docs.map(articleRow));
  showMore(docs.length, page.total);
}

/**
 * @param {number} shown
 * @param {number} total
 */
function showMore(shown, total) {
  Object.assign(library, { shown, total });
  moreArticles.hidden = shown >= total;
  moreArticles.textContent = `显示更多（还有 ${total - shown} 篇）`;
}

/** The next page of the articles view, appended. */
async function loadMoreArticles() {
  const url = `/api/documents?limit=${ARTICLE_PAGE}&offset=${library.shown}`;
  const res = await fetch(url, { headers: headers() });
  if (!res.ok) return;
  /** @type {ArticlePage} */
  const page = await res.json();
  byId("articles-list").append(...page.documents.map(articleRow));
  showMore(library.shown + page.documents.length, page.total);
}

/** One row of the articles view, with delete and its confirmation. @param {Article} a */
function articleRow(a) {
  const title = el("button", { type: "button", class: "article-title", title: "阅读原文" }, a.title);
  title.addEventListener("click", () => openArticle(a.id, a.title));
  const text = el(
    "div",
    { class: "article-text" },
    title,
    el("span", { class: "article-meta" }, `${a.id} · ${articleMeta(a)}`),
  );
  return removableRow(a.id, a.title, text);
}

/**
 * A list item for one file with a delete button that asks for confirmation first.
 * @param {string} id
 * @param {string} title
 * @param {Node} text
 */
function removableRow(id, title, text) {
  const a = { id, title };
  const actions = el("div", { class: "row-actions" });
  const row = el("li", { "data-id": id }, text, actions);
  const idle = () => {
    const remove = el("button", { type: "button", class: "ghost delete" }, "删除");
    remove.hidden = !library.editable;
    remove.addEventListener("click", confirming);
    actions.replaceChildren(remove);
  };
  const confirming = () => {
    const yes = el("button", { type: "button", class: "ghost danger confirm" }, "确定删除");
    const no = el("button", { type: "button", class: "ghost cancel" }, "取消");
    yes.addEventListener("click", () => removeArticle(a, yes));
    no.addEventListener("click", idle);
    actions.replaceChildren(el("span", { class: "danger" }, "删除这篇文章？"), yes, no);
    no.focus();
  };
  idle();
  return row;
}

/**
 * Show a whole article in the reader (over the articles view).
 * @param {string} id
 * @param {string} title
 */
async function openArticle(id, title) {
  const token = ++state.readerToken;
  const body = byId("reader-body");
  byId("reader-kicker").textContent = "原文";
  byId("reader-title").textContent = title;
  byId("reader-date").textContent = "";
  body.replaceChildren(el("p", { class: "status" }, "正在打开原文"));
  if (!reader.open) reader.showModal();
  try {
    const doc = await getDocument(id);
    if (token !== state.readerToken) return;
    byId("reader-date").textContent = doc.date || "";
    body.replaceChildren(doc.text);
    body.scrollTop = 0;
  } catch (err) {
    if (token !== state.readerToken) return;
    const reason = err instanceof Error ? err.message : String(err);
    body.replaceChildren(el("p", { class: "notice", role: "alert" }, `无法打开原文。${reason}`));
  }
}

/**
 * @param {{id: string, title: string}} a
 * @param {HTMLButtonElement} button
 */
async function removeArticle(a, button) {
  button.disabled = true;
  try {
    const path = a.id.split("/").map(encodeURIComponent).join("/");
    const res = await change(`/api/documents/${path}`, { method: "DELETE" });
    if (!res.ok) {
      say(await errorMessage(res, "删除失败"), true);
      button.disabled = false;
      return;
    }
    say(`已删除《${a.title}》，正在更新索引…`);
    followBuild();
  } catch {
    say("无法连接到服务器，请稍后重试。", true);
    button.disabled = false;
  }
}

/** @param {FileList|File[]} files */
async function upload(files) {
  const list = Array.from(files);
  if (!list.length) return;
  const body = new FormData();
  for (const file of list) body.append("file", file, file.name);
  say(`正在上传 ${list.length} 个文件…`);
  try {
    const res = await change("/api/documents", { method: "POST", body });
    if (!res.ok) {
      say(await errorMessage(res, "上传失败"), true);
      return;
    }
    const result = await res.json();
    /** @type {{id: string, replaced: boolean}[]} */
    const added = result.documents;
    const replaced = added.filter((d) => d.replaced).length;
    const note = replaced ? `（替换了 ${replaced} 篇同名文章）` : "";
    say(`已上传 ${result.ids.join("、")}${note}，正在建立索引…`);
    followBuild();
  } catch {
    say("无法连接到服务器，请稍后重试。", true);
  }
}

/** @param {IndexStatus} status */
function renderStatus(status) {
  library.editable = status.editable;
  byId("articles-locked").hidden = status.editable;
  dropZone.hidden = !status.editable;
  byId("accepted-types").textContent = `支持 ${status.suffixes.join(" ")}`;
  fileInput.accept = status.suffixes.join(",");
  const building = status.state === "building" || status.pending;
  articlesButton.classList.toggle("is-building", building);
  buildProgress.hidden = !building;
  const line = byId("build-status");
  if (building) {
    const p = status.progress;
    if (p && p.total) {
      buildProgress.max = p.total;
      buildProgress.value = p.done;
      line.textContent = `正在建立索引：已向量化 ${p.done} / ${p.total} 段文本`;
    } else {
      buildProgress.removeAttribute("value"); // indeterminate while reading the articles
      line.textContent = "正在建立索引…";
    }
  } else if (status.error) {
    line.textContent = `上次建立索引失败：${status.error}（仍在使用之前的索引）`;
  } else if (status.last_build) {
    const b = status.last_build;
    line.textContent =
      `${b.documents} 篇文章，${b.chunks} 段；上次索引新向量化 ${b.embedded} 段、` +
      `复用 ${b.reused} 段，用时 ${b.seconds.toFixed(1)} 秒`;
  }
  const skipped = byId("skipped");
  skipped.hidden = !status.skipped.length;
  byId("skipped-list").replaceChildren(
    ...status.skipped.map((s) =>
      removableRow(
        s.path,
        s.path,
        el("div", {}, el("span", { class: "path" }, s.path), el("span", {}, s.reason)),
      ),
    ),
  );
}

/** @returns {Promise<IndexStatus|null>} */
async function fetchStatus() {
  const res = await fetch("/api/index", { headers: headers() });
  return res.ok ? res.json() : null;
}

async function refreshArticles() {
  const res = await fetch(`/api/documents?limit=${ARTICLE_PAGE}`, { headers: headers() });
  if (res.ok) renderArticles(await res.json());
}

/** Poll the build until it is done, then show the new list (the server has swapped). */
async function followBuild() {
  if (library.polling) return;
  library.polling = true;
  try {
    for (;;) {
      const status = await fetchStatus();
      if (!status) break;
      renderStatus(status);
      if (status.state === "idle" && !status.pending) {
        await refreshArticles();
        state.docs.clear(); // articles may have changed
        if (!uploadMessage.classList.contains("is-error")) {
          say(status.error ? "" : "索引已更新，可以提问了。");
        }
        break;
      }
      await sleep(POLL_MS);
    }
  } catch {
    say("无法连接到服务器，请稍后重试。", true);
  } finally {
    library.polling = false;
  }
}

async function openArticles() {
  if (!articlesDialog.open) articlesDialog.showModal();
  try {
    const status = await fetchStatus();
    if (status) renderStatus(status);
    await refreshArticles();
    if (status && (status.state === "building" || status.pending)) followBuild();
  } catch {
    say("无法连接到服务器，请稍后重试。", true);
  }
}

articlesButton.hidden = false;
articlesButton.addEventListener("click", openArticles);
byId("articles-close").addEventListener("click", () => articlesDialog.close());
moreArticles.addEventListener("click", () =>
  loadMoreArticles().catch(() => say("无法连接到服务器，请稍后重试。", true)),
);
fileInput.addEventListener("change", () => {
  upload(fileInput.files || []);
  fileInput.value = "";
});
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("is-over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("is-over"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("is-over");
  upload(event.dataTransfer?.files || []);
});

const examples = document.getElementById("examples");
examples?.addEventListener("submit", (event) => {
  event.preventDefault();
  const button = /** @type {SubmitEvent} */ (event).submitter;
  if (button instanceof HTMLButtonElement && button.value && !state.busy) ask(button.value);
});

// --- wiring -------------------------------------------------------------------------------

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question || state.busy) return;
  input.value = "";
  autosize();
  ask(question);
});

input.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is not sent.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    form.requestSubmit();
  }
});
input.addEventListener("input", autosize);

conversationEl.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("[data-cite]") : null;
  if (!(target instanceof HTMLElement)) return;
  const turn = state.turns.find((t) => t.view.id === target.dataset.turn);
  if (!turn) return;
  const kind = target.dataset.kind;
  const id = Number(target.dataset.cite);
  if (kind === "short") {
    if (!turn.short) return;
    event.preventDefault();
    openReader(turn.short, turn.citations, "短答案");
    return;
  }
  const list = kind === "related" ? turn.related : turn.citations;
  const citation = list.find((c) => c.id === id);
  if (!citation) return;
  event.preventDefault();
  openReader(citation, list, kind === "related" ? `相关段落 ${id}` : `来源 [${id}]`);
});

byId("reader-close").addEventListener("click", () => reader.close());
reader.addEventListener("click", (event) => {
  if (event.target === reader) reader.close(); // a click on the backdrop
});

byId("new-chat").addEventListener("click", (event) => {
  event.preventDefault();
  newConversation();
});

const keyButton = byId("key-button");
keyButton.hidden = !(needsKey || adminKeys);
keyButton.addEventListener("click", () => askForKey());

const banner = byId("net-banner");
window.addEventListener("offline", () => {
  banner.hidden = false;
});
window.addEventListener("online", () => {
  banner.hidden = true;
});
banner.hidden = navigator.onLine;

if (needsKey && !storedKey()) askForKey();
else if (window.matchMedia("(pointer: fine)").matches) input.focus();
