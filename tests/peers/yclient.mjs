// Real Yjs clients (yjs + y-websocket, and raw `ws` sockets) against Demiurge's collab endpoint.
// <base> is ws://host/api/v1/projects/<id>; the room name is "collab". Collaborative text lives
// in the client-writable root map `texts` (key -> Y.Text). Modes:
//   sync  <base> <writer> <writer2> <viewer>   text, maps, awareness, refused writes, garbage
//   write <base> <token> <text>                append to texts.t
//   read  <base> <token>                       print texts.t
//   edit  <base> <token> <key> <text>          append to texts.<key> (a card's text); print
//                                              the close code if the server closed the socket
//   watch <base> <token> <js-expr>             print SYNCED, then wait until expr(d) holds,
//                                              d = the document as JSON; print it
//   close <base> <token> [nopong]              a raw socket: print OPEN, then the close code
//   storm <base> <token> <clients> <edits>     clients append edits to texts.c<i>; print
//                                              SYNCED; when the server goes, print what each
//                                              had received from the others
//   first <base> <token> <clients>             clients connect at once; print what each held
//                                              when it first counted as synced
//   fuzz  <base> <token> <token2>              garbage from raw sockets; others keep working
// Prints one line RESULT {...} or FAIL {...} (plus the progress lines above).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [mode, base, ...args] = process.argv.slice(2)
const limit = Number(process.env.YCLIENT_TIMEOUT_MS || 30000)
setTimeout(() => { console.log('FAIL {"error":"timeout"}'); process.exit(2) }, limit).unref()
const mk = (token, opts = {}) => {
  const doc = new Y.Doc()
  const p = new WebsocketProvider(base, 'collab', doc, { WebSocketPolyfill: WebSocket, params: { token }, disableBc: true, ...opts })
  return { doc, p }
}
const until = (f) => new Promise((r) => { const c = () => (f() ? r() : setTimeout(c, 20)); c() })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
// The document as JSON (roots must be asked for by type; unasked ones are untyped in Yjs).
const json = (doc) => Object.fromEntries(['meta', 'nodes', 'edges', 'texts'].map((k) => [k, doc.getMap(k).toJSON()]))
const text = (doc, key) => doc.getMap('texts').get(key)?.toString() ?? ''
const raw = (token) => new WebSocket(`${base}/collab?token=${encodeURIComponent(token)}`)
const closeOf = (ws) => new Promise((r) => ws.on('close', (code) => r(code)))
const result = {}
try {
  if (mode === 'sync') {
    const [ta, tb, tv] = args
    const a = mk(ta); const b = mk(tb)
    await until(() => a.p.synced && b.p.synced)
    const t = new Y.Text(); a.doc.getMap('texts').set('t', t); t.insert(0, 'hello from A')
    await until(() => text(b.doc, 't') === 'hello from A')
    const t2 = new Y.Text(); b.doc.getMap('texts').set('m', t2); t2.insert(0, '42')
    await until(() => text(a.doc, 'm') === '42')
    // Awareness goes through, and the server writes the real user into it.
    a.p.awareness.setLocalStateField('cursor', { x: 1, y: 2 })
    a.p.awareness.setLocalStateField('user', { name: 'Mallory', color: '#f00' })
    await until(() => [...b.p.awareness.getStates().values()].some((s) => s.cursor?.x === 1 && s.user?.name !== 'Mallory'))
    const seen = [...b.p.awareness.getStates().values()].find((s) => s.cursor?.x === 1)
    result.awareness_user = seen.user
    // A viewer receives everything, but its writes reach no one.
    const v = mk(tv)
    await until(() => v.p.synced && text(v.doc, 't') === 'hello from A')
    v.doc.getMap('texts').get('t').insert(0, 'VIEWER ')
    await sleep(700)
    result.viewer_write_leaked = text(a.doc, 't').includes('VIEWER')
    // A direct write to a module's root closes its sender (1008) and reaches no one.
    const f = mk(ta, { connect: false })
    const fclose = new Promise((r) => f.p.on('connection-close', (e) => r(e?.code)))
    f.p.connect()
    await until(() => f.p.synced)
    f.doc.getMap('nodes').set('forged', { id: 'forged' })
    result.forbidden_close = await fclose
    f.p.destroy()
    await sleep(300)
    result.forbidden_leaked = b.doc.getMap('nodes').has('forged')
    // A client sending garbage is closed; the others go on.
    const g = raw(ta)
    const closed = closeOf(g)
    await new Promise((r) => g.on('open', r))
    g.send(Buffer.from([0x00, 0x07, 0xff, 0xff, 0xff]))
    result.garbage_close = await closed
    a.doc.getMap('texts').get('t').insert(text(a.doc, 't').length, '!')
    await until(() => text(b.doc, 't') === 'hello from A!')
    // A leaves: its awareness state goes from B.
    a.p.destroy()
    await until(() => ![...b.p.awareness.getStates().values()].some((s) => s.cursor?.x === 1))
    result.awareness_removed = true
    result.text = text(b.doc, 't')
    b.p.destroy(); v.p.destroy()
  } else if (mode === 'write') {
    const [t, s] = args
    const c = mk(t)
    await until(() => c.p.synced)
    const m = c.doc.getMap('texts')
    if (!m.has('t')) m.set('t', new Y.Text())
    m.get('t').insert(m.get('t').length, s)
    await sleep(500)
    result.text = text(c.doc, 't')
    c.p.destroy()
  } else if (mode === 'edit') {
    const [t, key, s] = args
    const c = mk(t)
    await until(() => c.p.synced)
    let closed = null
    c.p.on('connection-close', (e) => { if (closed === null) closed = e?.code ?? 0 })
    const m = c.doc.getMap('texts')
    if (!m.has(key)) m.set(key, new Y.Text())
    m.get(key).insert(m.get(key).length, s)
    const t0 = Date.now()
    await until(() => closed !== null || Date.now() - t0 > 1500)
    result.closed = closed
    result.text = text(c.doc, key)
    c.p.destroy()
  } else if (mode === 'read') {
    const c = mk(args[0])
    await until(() => c.p.synced)
    result.text = text(c.doc, 't')
    c.p.destroy()
  } else if (mode === 'watch') {
    const [t, expr] = args
    const test = new Function('d', `return (${expr})`)
    const c = mk(t)
    await until(() => c.p.synced)
    console.log('SYNCED')
    await until(() => { try { return test(json(c.doc)) } catch { return false } })
    result.doc = json(c.doc)
    c.p.destroy()
  } else if (mode === 'close') {
    // With `nopong`, the socket never answers pings (a client gone silent).
    const ws = args[1] === 'nopong'
      ? new WebSocket(`${base}/collab?token=${encodeURIComponent(args[0])}`, { autoPong: false })
      : raw(args[0])
    const closed = closeOf(ws)
    ws.on('open', () => console.log('OPEN'))
    ws.on('error', () => {})
    result.code = await closed
  } else if (mode === 'storm') {
    const [t, n, edits] = [args[0], Number(args[1]), Number(args[2])]
    const cs = [...Array(n)].map(() => mk(t, { maxBackoffTime: 60000 }))
    await until(() => cs.every((c) => c.p.synced))
    cs.forEach((c, i) => { const y = new Y.Text(); c.doc.getMap('texts').set(`c${i}`, y) })
    console.log('SYNCED')
    // What each client received from the others, frozen when its connection drops.
    const received = cs.map(() => null)
    cs.forEach((c, i) => c.p.on('status', ({ status }) => {
      if (status === 'disconnected' && received[i] === null) {
        const got = {}
        for (const [k, v] of c.doc.getMap('texts').entries()) if (k !== `c${i}`) got[k] = v.toString()
        received[i] = got
        c.p.shouldConnect = false
      }
    }))
    let sent = 0
    for (let k = 0; k < edits; k++) {
      for (let i = 0; i < n; i++) {
        if (received[i] !== null) continue
        const y = cs[i].doc.getMap('texts').get(`c${i}`)
        y.insert(y.length, `${i}:${k};`)
        sent++
      }
      await sleep(10)
    }
    result.sent = sent
    await until(() => received.every((r) => r !== null))
    result.received = received
    cs.forEach((c) => c.p.destroy())
  } else if (mode === 'first') {
    const [t, n] = [args[0], Number(args[1])]
    const cs = [...Array(n)].map(() => mk(t))
    const at = cs.map(() => null)
    cs.forEach((c, i) => c.p.on('sync', (s) => { if (s && at[i] === null) at[i] = text(c.doc, 't').length }))
    await until(() => at.every((x) => x !== null))
    result.lengths = at
    cs.forEach((c) => c.p.destroy())
  } else if (mode === 'fuzz') {
    const [ta, tb] = args
    const a = mk(ta); const b = mk(tb)
    await until(() => a.p.synced && b.p.synced)
    const frames = [
      Buffer.from([]), // empty
      Buffer.from([0x00]), // truncated sync message
      Buffer.from([0x00, 0x02, 0x05, 0x01]), // truncated update
      Buffer.from([0x09, 0x01, 0x02]), // unknown message type
      Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff]), // awareness with an absurd length
      ...[...Array(20)].map(() => Buffer.from([...Array(64)].map(() => Math.floor(Math.random() * 256)))),
    ]
    const codes = []
    for (const f of frames) {
      const ws = raw(ta)
      const closed = closeOf(ws)
      ws.on('error', () => {})
      await new Promise((r) => ws.on('open', r))
      ws.send(f)
      codes.push(await Promise.race([closed, sleep(1500).then(() => { ws.terminate(); return 'open' })]))
    }
    // Oversized: past the frame limit.
    const big = raw(ta)
    big.on('error', () => {})
    const bigClosed = closeOf(big)
    await new Promise((r) => big.on('open', r))
    big.send(Buffer.alloc(9 * 1024 * 1024, 1))
    result.oversized_close = await bigClosed
    // A text frame is not the protocol.
    const tx = raw(ta)
    const txClosed = closeOf(tx)
    await new Promise((r) => tx.on('open', r))
    tx.send('hello')
    result.text_close = await txClosed
    result.codes = codes
    // Through all of that, A and B kept working.
    const y = new Y.Text(); a.doc.getMap('texts').set('after', y); y.insert(0, 'still here')
    await until(() => text(b.doc, 'after') === 'still here')
    result.others_fine = true
    a.p.destroy(); b.p.destroy()
  }
  // Exit only once the line is out: a pipe is written asynchronously.
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n', () => process.exit(0))
} catch (e) {
  process.stdout.write('FAIL ' + JSON.stringify({ ...result, error: String(e) }) + '\n', () => process.exit(1))
}
