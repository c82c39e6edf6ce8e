"""Plays a livestack stream over WebRTC with aiortc, as a WHEP or a LEB
client, and prints what it received as one JSON line: decoded video
frames and their size, decoded audio frames and their loudness, and how
the session was ended. Used by tests/it/webrtc.rs.

    webrtc_play.py whep URL [--seconds S]
    webrtc_play.py leb PULL_URL STREAM_URL [--seconds S]
"""
import argparse
import array
import asyncio
import json
import math
import sys
import time
import urllib.error
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription

# Loopback only: aioice leaves 127.0.0.1 out of its host candidates, and
# the tests' server listens there.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


# Frames of the first seconds are the server's GOP cache, sent at once:
# not counted in the latency.
SETTLE = 3.0
# The clock xtask bench-latency burns into the top of each frame: bit i of
# the milliseconds since the base is a 30x32 block at x = 30 i, white for 1.
CLOCK_BITS = 21


def burnt_in_ms(frame):
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    row = 16 * plane.line_size
    ms = 0
    for i in range(CLOCK_BITS):
        if data[row + i * 30 + 15] > 128:
            ms |= 1 << i
    return ms


def post(url, body, content_type):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def delete(url):
    req = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["whep", "leb"])
    parser.add_argument("url")
    parser.add_argument("stream_url", nargs="?")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--wav", help="keep the decoded audio here")
    parser.add_argument("--vanish", action="store_true", help="end without closing the session, as a crashed player does")
    parser.add_argument("--latency-base", type=float, help="read the publisher's burnt-in clock (xtask bench-latency): Unix seconds it counts from")
    args = parser.parse_args()
    wav = None
    if args.wav:
        import wave
        wav = wave.open(args.wav, "wb")
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(48000)

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    result = {"video_frames": 0, "width": 0, "height": 0, "audio_frames": 0, "audio_rms": 0.0, "audio_peak": 0, "silent_frames": 0, "audio_format": ""}
    squares = [0.0, 0]
    latencies = []
    started = time.time()
    frame_rms = []
    done = asyncio.Event()

    async def consume(track):
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    result["video_frames"] += 1
                    result["width"], result["height"] = frame.width, frame.height
                    if args.latency_base is not None:
                        shown = burnt_in_ms(frame)
                        now_ms = (time.time() - args.latency_base) * 1000.0
                        if time.time() - started > SETTLE:
                            latencies.append(now_ms - shown)
                else:
                    result["audio_frames"] += 1
                    # The plane's buffer is padded: only frame.samples count.
                    pcm = bytes(frame.planes[0])[: frame.samples * len(frame.layout.channels) * 2]
                    samples = array.array("h", pcm)
                    if wav is not None:
                        wav.writeframes(pcm)
                    result["audio_format"] = f"{frame.format.name}/{frame.layout.name}/{frame.sample_rate}"
                    peak = max((abs(s) for s in samples), default=0)
                    result["audio_peak"] = max(result["audio_peak"], peak)
                    frame_rms.append(math.sqrt(sum(s * s for s in samples) / max(len(samples), 1)))
                    if peak < 100:
                        result["silent_frames"] += 1
                    squares[0] += sum(s * s for s in samples)
                    squares[1] += len(samples)
        except Exception:
            pass

    tasks = []

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(consume(track)))

    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    if args.mode == "whep":
        status, headers, body = post(args.url, offer.encode(), "application/sdp")
        result["status"] = status
        if status != 201:
            result["error"] = body.decode(errors="replace")
            print(json.dumps(result))
            await pc.close()
            return
        answer = body.decode()
        location = headers.get("Location") or headers.get("location")
        result["location"] = location
    else:
        request = {
            "streamurl": args.stream_url,
            "sessionid": "aiortc-test",
            "clientinfo": "aiortc",
            "localsdp": {"type": "offer", "sdp": offer},
        }
        status, _, body = post(args.url, json.dumps(request).encode(), "application/json")
        reply = json.loads(body)
        result["status"] = status
        result["errcode"] = reply.get("errcode")
        if reply.get("errcode") != 0:
            result["error"] = reply.get("errmsg")
            print(json.dumps(result))
            await pc.close()
            return
        answer = reply["remotesdp"]["sdp"]
        result["svrsig"] = reply.get("svrsig")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        await asyncio.wait_for(done.wait(), timeout=args.seconds)
    except asyncio.TimeoutError:
        pass
    result["connection"] = pc.connectionState
    if squares[1]:
        result["audio_rms"] = math.sqrt(squares[0] / squares[1])
    if latencies:
        latencies.sort()
        result["latency_ms"] = {
            "p50": latencies[len(latencies) // 2],
            "p90": latencies[int(len(latencies) * 0.9)],
            "min": latencies[0],
            "frames": len(latencies),
        }
    if frame_rms:
        result["audio_rms_median"] = sorted(frame_rms)[len(frame_rms) // 2]
    # End the session as a player does, or vanish.
    if args.vanish:
        print(json.dumps(result))
        sys.stdout.flush()
        import os
        os._exit(0)
    if args.mode == "whep":
        base = args.url.split("/", 3)
        result["delete_status"] = delete(f"{base[0]}//{base[2]}{location}")
    else:
        stop = args.url.replace("/pullstream", "/stopstream")
        _, _, body = post(stop, json.dumps({"streamurl": args.stream_url, "svrsig": result["svrsig"]}).encode(), "application/json")
        result["stop_errcode"] = json.loads(body).get("errcode")
    for t in tasks:
        t.cancel()
    await pc.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
