/**
 * POST /api/v1/trace {network?, in, frame}: the forwarding decision for a
 * frame, now (changes nothing).
 */

import type { ApiRequest } from './route'
import type { TraceJson } from '../../../common/api-types'
import { traceFrame } from '../trace'
import { parseFrameSpec } from '../../../common/framespec'
import { TapswitchError } from '../../../common/errors'
import { HttpError, send, readJson, optString } from './http'
import { lookupPort } from '../names'

export async function postTrace ({ req, res, server }: ApiRequest): Promise<void> {
  const b = await readJson(req)
  const portName = optString(b.in, 'in')
  if (portName === undefined) throw new HttpError(400, 'in: required (the ingress port)')
  // Without a network, the port's own (a name two networks have needs one: 409).
  const sw = lookupPort(server, portName, optString(b.network, 'network')).network
  const ingress = sw.ports.find((p) => p.name === portName)
  if (ingress === undefined) throw new HttpError(404, `no port "${portName}" in network ${sw.name}`)
  const spec = optString(b.frame, 'frame')
  if (spec === undefined) throw new HttpError(400, 'frame: required (e.g. dst=02:00:00:00:00:02,src=02:00:00:00:00:01,vlan=10)')
  let frame: Buffer
  try { frame = parseFrameSpec(spec) } catch (err) {
    if (err instanceof TapswitchError) throw new HttpError(400, err.message)
    throw err
  }
  const t: TraceJson = traceFrame(sw, ingress, frame)
  send(res, 200, t)
}
