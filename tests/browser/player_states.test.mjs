// player_states.test.mjs — the castgate player page (SPEC §7) in headless
// Chromium, embedded in a parent page of another origin: the classroom
// state machine, the postMessage protocol and the access-code form. The rooms
// have no broadcast, so the page stays `connecting`; playback itself is
// player_playback.test.mjs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { castgateSkipReason, launchBrowser, servePages, sql, startCastgate, waitFor } from './harness.mjs';

const skip = castgateSkipReason();

const PARENT = (src) => `<!doctype html><meta charset="utf-8"><title>parent</title>
<iframe id="player" src="${src}" width="640" height="360" allow="autoplay"></iframe>
<script>
  window.msgs = [];
  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'castgate') window.msgs.push({ origin: e.origin, data: e.data });
  });
</script>`;

describe('player page states', { skip: skip || false }, () => {
  let cg, browser, pages;
  const parentPages = {};

  before(async () => {
    cg = await startCastgate();
    browser = await launchBrowser();
    pages = await servePages(parentPages);
  });

  after(async () => {
    if (browser) await browser.close();
    if (pages) await pages.close();
    if (cg) await cg.stop();
  });

  async function embed(src) {
    const name = `/parent-${Object.keys(parentPages).length}.html`;
    parentPages[name] = { type: 'text/html; charset=utf-8', body: PARENT(src) };
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(pages.base + name);
    const frame = await waitFor(() => page.frames().find((f) => f.url().includes('/play/')), 10000, 'player frame');
    await frame.waitForLoadState('load');
    return { page, frame };
  }

  const states = (page) => page.evaluate(() => window.msgs.map((m) => m.data.state));
  const frameState = (frame) => frame.evaluate(() => document.getElementById('player').dataset.state);

  test('embedded player goes idle → connecting and tells the parent', async () => {
    const rid = cg.room('PRIVATE', 'Physics <1> & co');
    const tok = (await cg.api('POST', `/v2/apps/me/video-rooms/${rid}/tokens`, { role: 'STUDENT', uid: 'pupil' })).json.data;
    const { page, frame } = await embed(tok.iframeUrl);
    await waitFor(async () => (await states(page)).includes('connecting'), 10000, 'connecting message');
    const msgs = await page.evaluate(() => window.msgs);
    assert.equal(msgs[0].data.state, 'idle');
    assert.equal(msgs[0].data.event, null);
    assert.equal(msgs[0].data.roomId, rid);
    assert.equal(msgs[0].origin, cg.base, 'messages come from the castgate origin');
    assert.equal(await frameState(frame), 'connecting');
    assert.equal(await frame.textContent('#title'), 'Physics <1> & co');
    assert.equal(await frame.evaluate(() => !!window.Hls && window.Hls.isSupported()), true,
      'hls.js is served by castgate and supported');
    assert.match(await frame.textContent('#message'), /Waiting for the broadcast/);
    // the token never reaches the parent
    assert.ok(!JSON.stringify(msgs).includes(tok.token));
    await page.close();
  });

  test('revoking the token kicks the viewer and posts participant_removed', async () => {
    const rid = cg.room('PRIVATE');
    const tok = (await cg.api('POST', `/v2/apps/me/video-rooms/${rid}/tokens`, { role: 'STUDENT' })).json.data;
    const { page, frame } = await embed(tok.iframeUrl);
    await waitFor(async () => (await states(page)).includes('connecting'), 10000, 'connecting');
    // the events stream must be open before the revocation
    await waitFor(() => frame.evaluate(() => document.getElementById('player').dataset.events === 'open'),
      10000, 'events stream opened');
    const del = await cg.api('DELETE', `/v2/apps/me/video-rooms/${rid}/tokens/${tok.id}`);
    assert.equal(del.status, 204);
    await waitFor(async () => (await states(page)).includes('kicked'), 10000, 'kicked');
    const msgs = await page.evaluate(() => window.msgs.map((m) => m.data));
    const removed = msgs.find((m) => m.event && m.event.type === 'participant_removed');
    assert.ok(removed, 'participant_removed was posted');
    assert.equal(removed.event.data.tokenId, tok.id);
    assert.equal(await frameState(frame), 'kicked');
    await page.close();
  });

  test('class_ended ends the class for a public room viewer', async () => {
    const rid = cg.room('PUBLIC', 'Open lecture');
    const { page, frame } = await embed(`${cg.base}/play/${rid}`);
    await waitFor(async () => (await states(page)).includes('connecting'), 10000, 'connecting');
    await waitFor(() => frame.evaluate(() => document.getElementById('player').dataset.events === 'open'),
      10000, 'events stream opened');
    sql(`INSERT INTO events (app_id, video_room_id, type, actor) VALUES (${cg.app.appId}, ${rid}, 'class_ended', 'test')`);
    await waitFor(async () => (await states(page)).includes('ended'), 10000, 'ended');
    const msgs = await page.evaluate(() => window.msgs.map((m) => m.data));
    assert.ok(msgs.some((m) => m.event && m.event.type === 'class_ended'), 'class_ended was posted');
    assert.equal(await frameState(frame), 'ended');
    // ended is final: no later state change
    const n = msgs.length;
    sql(`INSERT INTO events (app_id, video_room_id, type, actor) VALUES (${cg.app.appId}, ${rid}, 'quality_changed', 'test')`);
    await waitFor(async () => (await page.evaluate(() => window.msgs.length)) > n, 10000, 'later event posted');
    assert.equal(await frameState(frame), 'ended');
    await page.close();
  });

  test('a revoked link opens as kicked', async () => {
    const rid = cg.room('PRIVATE');
    const tok = (await cg.api('POST', `/v2/apps/me/video-rooms/${rid}/tokens`, { role: 'STUDENT' })).json.data;
    await cg.api('DELETE', `/v2/apps/me/video-rooms/${rid}/tokens/${tok.id}`);
    const { page, frame } = await embed(tok.iframeUrl);
    await waitFor(async () => (await states(page)).includes('kicked'), 10000, 'kicked');
    assert.equal(await frameState(frame), 'kicked');
    await page.close();
  });

  test('a private room without a token asks for the access code', async () => {
    const rid = cg.room('PRIVATE', 'Locked class');
    const code = await cg.api('POST', `/v2/apps/me/video-rooms/${rid}/access-codes`, { code: 'open-sesame' });
    assert.equal(code.status, 201);
    const page = await browser.context.newPage();
    await page.goto(`${cg.base}/play/${rid}`);
    await page.waitForSelector('#join:not([hidden])');
    assert.equal(await page.evaluate(() => document.getElementById('player').dataset.state), 'idle');
    assert.notEqual(await page.textContent('#title'), 'Locked class', 'no title without access');
    await page.fill('#code', 'wrong-code');
    await page.click('#join button');
    await waitFor(async () => /not valid|invalid|did not work/i.test(await page.textContent('#message')), 10000,
      'refusal shown');
    await page.fill('#code', 'open-sesame');
    await page.click('#join button');
    await waitFor(() => page.evaluate(() => document.getElementById('player').dataset.state === 'connecting'),
      10000, 'connecting after join');
    assert.match(page.url(), /[?&]token=ey/);
    assert.equal(await page.isHidden('#join'), true);
    await page.close();
  });
});
