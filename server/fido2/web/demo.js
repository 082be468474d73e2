// hwfido FIDO2 demo client. window.hwfido.register/login return plain objects so that
// automation (test/browser) can call them and inspect the server's answers.
(function () {
  'use strict';
  const base = '/nevisfido/fido2';

  async function post(path, body, headers) {
    const h = Object.assign({'Content-Type': 'application/json'}, headers || {});
    const r = await fetch(base + path, {method: 'POST', headers: h, body: JSON.stringify(body), credentials: 'same-origin'});
    let j;
    try { j = await r.json(); } catch (e) { j = {status: 'failed', errorMessage: 'non-JSON answer'}; }
    j.httpStatus = r.status;
    return j;
  }

  function strip(o) {
    const c = Object.assign({}, o);
    delete c.status; delete c.errorMessage; delete c.fido2SessionId; delete c.httpStatus;
    return c;
  }

  async function register(p) {
    p = p || {};
    const req = {username: p.username || '', displayName: p.displayName || p.username || ''};
    if (p.authenticatorSelection) req.authenticatorSelection = p.authenticatorSelection;
    if (p.attestation) req.attestation = p.attestation;
    if (p.extensions) req.extensions = p.extensions;
    const o = await post('/attestation/options', req, p.headers);
    if (o.status !== 'ok') return Object.assign({stage: 'options'}, o);
    let cred;
    try {
      cred = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(strip(o))});
    } catch (e) {
      return {stage: 'browser', status: 'failed', errorMessage: e.name + ': ' + e.message, optionsSessionId: o.fido2SessionId, options: strip(o)};
    }
    const body = cred.toJSON();
    if (p.userFriendlyName) body.userFriendlyName = p.userFriendlyName;
    const r = await post('/attestation/result', body, p.headers);
    return Object.assign({stage: 'result', optionsSessionId: o.fido2SessionId, options: strip(o)}, r);
  }

  async function login(p) {
    p = p || {};
    const req = {username: p.username || ''};
    if (p.userVerification) req.userVerification = p.userVerification;
    if (p.extensions) req.extensions = p.extensions;
    const o = await post('/assertion/options', req, p.headers);
    if (o.status !== 'ok') return Object.assign({stage: 'options'}, o);
    let cred;
    try {
      cred = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(strip(o))});
    } catch (e) {
      return {stage: 'browser', status: 'failed', errorMessage: e.name + ': ' + e.message, optionsSessionId: o.fido2SessionId, options: strip(o)};
    }
    const r = await post('/assertion/result', cred.toJSON(), p.headers);
    return Object.assign({stage: 'result', optionsSessionId: o.fido2SessionId, options: strip(o)}, r);
  }

  async function status(id) {
    return post('/status', {fido2SessionId: id});
  }

  window.hwfido = {register: register, login: login, status: status};

  function headers() {
    const n = document.getElementById('hname').value, v = document.getElementById('hvalue').value;
    const h = {};
    if (n && v) h[n] = v;
    return h;
  }
  function show(x) { document.getElementById('out').textContent = JSON.stringify(x, null, 2); }
  const user = () => document.getElementById('username').value;
  document.getElementById('reg').onclick = async () => show(await register({
    username: user(), headers: headers(), authenticatorSelection: {residentKey: 'preferred', userVerification: 'preferred'},
    extensions: {credProps: true}}));
  document.getElementById('login').onclick = async () => show(await login({username: user(), headers: headers()}));
  document.getElementById('passkey').onclick = async () => show(await login({headers: headers()}));
})();
