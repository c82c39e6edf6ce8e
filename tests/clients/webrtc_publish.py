"""Pushes a generated stream to livestack over WHIP with aiortc: a
640x360 test picture (H.264, encoded by aiortc) and a 440 Hz sine (Opus),
for a number of seconds, then ends the session with DELETE. Prints one
JSON line: the WHIP answer's status and Location, the ICE connection
state reached, and the DELETE's status. Used by tests/it/webrtc.rs.

    webrtc_publish.py WHIP_URL [--seconds S] [--token BEARER]
"""
import argparse
import asyncio
import json
import urllib.error
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

# Loopback only, as in webrtc_play.py.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def request(url, method, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--token")
    args = parser.parse_args()

    video = MediaPlayer("testsrc=size=640x360:rate=25", format="lavfi")
    audio = MediaPlayer("sine=frequency=440:sample_rate=48000", format="lavfi")
    pc = RTCPeerConnection()
    vt = pc.addTransceiver(video.video, direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    vt.setCodecPreferences(h264)
    pc.addTransceiver(audio.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    status, resp_headers, body = request(args.url, "POST", pc.localDescription.sdp.encode(), headers)
    result = {"status": status}
    if status != 201:
        result["error"] = body.decode(errors="replace")
        print(json.dumps(result))
        await pc.close()
        return
    location = resp_headers.get("Location") or resp_headers.get("location")
    result["location"] = location
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body.decode(), type="answer"))
    await asyncio.sleep(args.seconds)
    result["connection"] = pc.connectionState
    base = args.url.split("/", 3)
    result["delete_status"] = request(f"{base[0]}//{base[2]}{location}", "DELETE")[0]
    await pc.close()
    video.video.stop()
    audio.audio.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
