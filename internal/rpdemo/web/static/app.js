// Example Bank page logic: start an out-of-band operation at the bank's backend, show the
// QR code it returns and follow the operation through the backend's event stream. The page
// never talks to the FIDO server; the backend verifies the result token.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  async function start(path, body) {
    const resp = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await resp.json().catch(() => ({ error: "HTTP " + resp.status }));
    if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
    return data;
  }

  // follow shows the operation's state changes under the given id prefix until it ends.
  function follow(prefix, op, onFinal) {
    const status = $(prefix + "-status"), trail = $(prefix + "-trail"), outcome = $(prefix + "-outcome");
    const es = new EventSource("/api/ops/" + encodeURIComponent(op) + "/events");
    let shown = 0;
    es.addEventListener("state", (ev) => {
      const st = JSON.parse(ev.data);
      status.textContent = st.status;
      status.dataset.status = st.status;
      for (; shown < st.trail.length; shown++) {
        const li = document.createElement("li");
        li.textContent = st.trail[shown];
        trail.appendChild(li);
      }
      if (!st.final) return;
      es.close();
      outcome.dataset.outcome = st.outcome;
      if (st.outcome === "succeeded" && st.kind === "deregistration") {
        outcome.textContent = "Removed — the FIDO server has no registration of yours left.";
      } else if (st.outcome === "succeeded") {
        outcome.textContent = "Success — verified by the FIDO server's signed result token.";
      } else if (st.outcome === "failed") {
        outcome.textContent = "Failed (UAF status " + (st.uafStatusCode || "–") + ", client error " + (st.clientErrorCode || 0) + ").";
      } else {
        outcome.textContent = "Error: " + (st.error || "unknown");
      }
      if (onFinal) onFinal(st);
    });
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) status.textContent += " (stream closed)"; };
  }

  function reset(prefix) {
    $(prefix + "-status").textContent = "–";
    $(prefix + "-status").dataset.status = "";
    $(prefix + "-trail").replaceChildren();
    $(prefix + "-outcome").textContent = "";
    $(prefix + "-outcome").dataset.outcome = "";
    $(prefix + "-qr-box").hidden = true;
  }

  function showQR(prefix, qr) {
    $(prefix + "-qr").src = qr;
    $(prefix + "-qr-box").hidden = false;
  }

  const reg = $("reg-start");
  if (reg) {
    reg.addEventListener("click", async () => {
      reset("reg");
      reg.disabled = true;
      try {
        const r = await start("/api/registration", {});
        showQR("reg", r.qr);
        follow("reg", r.op, () => { reg.disabled = false; });
      } catch (e) {
        $("reg-outcome").dataset.outcome = "error";
        $("reg-outcome").textContent = "Error: " + e.message;
        reg.disabled = false;
      }
    });
  }

  // oneShot wires a button that starts an operation shown with a QR code under prefix.
  function oneShot(prefix, path, onSuccess) {
    const btn = $(prefix + "-start");
    if (!btn) return;
    btn.addEventListener("click", async () => {
      reset(prefix);
      btn.disabled = true;
      try {
        const r = await start(path, {});
        showQR(prefix, r.qr);
        follow(prefix, r.op, (st) => {
          btn.disabled = false;
          if (st.outcome === "succeeded" && onSuccess) onSuccess(r.op, st);
        });
      } catch (e) {
        $(prefix + "-outcome").dataset.outcome = "error";
        $(prefix + "-outcome").textContent = "Error: " + e.message;
        btn.disabled = false;
      }
    });
  }

  // Log in with the phone: once the backend verified who logged in, it turns this
  // browser's session into a logged-in one.
  oneShot("ul", "/api/login/qr", async (op) => {
    try {
      await start("/api/ops/" + encodeURIComponent(op) + "/login", {});
      window.location.assign("/");
    } catch (e) {
      $("ul-outcome").dataset.outcome = "error";
      $("ul-outcome").textContent = "Error: " + e.message;
    }
  });
  oneShot("dereg", "/api/deregistration");

  const pay = $("pay-form");
  if (pay) {
    pay.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      reset("pay");
      $("pay-proof").hidden = true;
      $("pay-start").disabled = true;
      try {
        const r = await start("/api/payment", { amount: $("pay-amount").value, payee: $("pay-payee").value });
        $("pay-tx").textContent = "Confirm on your phone: " + r.transaction;
        $("pay-via").textContent = r.via === "push" ? "Sent to your phone." : "Scan the code with your phone.";
        $("pay-via").dataset.via = r.via;
        if (r.qr) showQR("pay", r.qr);
        follow("pay", r.op, (st) => {
          $("pay-start").disabled = false;
          if (st.outcome === "succeeded") {
            $("pay-txhash").textContent = st.txHash;
            $("pay-aaid").textContent = st.aaid;
            $("pay-proof").hidden = false;
          }
        });
      } catch (e) {
        $("pay-outcome").dataset.outcome = "error";
        $("pay-outcome").textContent = "Error: " + e.message;
        $("pay-start").disabled = false;
      }
    });
  }
})();
