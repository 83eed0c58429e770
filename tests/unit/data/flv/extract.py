import struct, sys
def flv_tags(path):
    d = open(path,'rb').read()
    assert d[:3] == b'FLV'
    off = struct.unpack('>I', d[5:9])[0] + 4
    while off + 11 <= len(d):
        t = d[off] & 0x1f
        size = int.from_bytes(d[off+1:off+4],'big')
        ts = int.from_bytes(d[off+4:off+7],'big') | (d[off+7]<<24)
        body = d[off+11:off+11+size]
        yield t, ts, body
        off += 11 + size + 4
def boxes(d, off, end):
    while off + 8 <= end:
        size, typ = struct.unpack('>I4s', d[off:off+8])
        hdr = 8
        if size == 1:
            size = struct.unpack('>Q', d[off+8:off+16])[0]; hdr = 16
        if size == 0: size = end - off
        yield typ.decode('latin1'), off + hdr, off + size
        off += size
def find(d, path, off=0, end=None):
    if end is None: end = len(d)
    name = path[0]
    for typ, s, e in boxes(d, off, end):
        if typ == name:
            if len(path) == 1: return s, e
            r = find(d, path[1:], s, e)
            if r: return r
    return None
def mp4_info(path):
    d = open(path,'rb').read()
    stbl = find(d, ['moov','trak','mdia','minf','stbl'])
    s, e = find(d, ['stsd'], *stbl)
    # stsd: fullbox(4) count(4) then sample entry
    es = s + 8
    esize, etyp = struct.unpack('>I4s', d[es:es+8])
    # visual sample entry: 8 hdr + 78 bytes
    cfg = None
    for typ, bs, be in boxes(d, es + 8 + 78, es + esize):
        if typ in ('avcC','hvcC','av1C'):
            cfg = (typ, d[bs:be])
    zs, ze = find(d, ['stsz'], *stbl)
    sample_size, count = struct.unpack('>II', d[zs+4:zs+12])
    sizes = [struct.unpack('>I', d[zs+12+4*i:zs+16+4*i])[0] for i in range(count)] if sample_size == 0 else [sample_size]*count
    cs, ce = find(d, ['stco'], *stbl)
    first = struct.unpack('>I', d[cs+8:cs+12])[0]
    return etyp.decode(), cfg, d[first:first+sizes[0]], (d[first+sizes[0]:first+sizes[0]+sizes[1]] if count > 1 else None)
if __name__ == '__main__':
    p = sys.argv[1]
    if p.endswith('.flv'):
        for i,(t,ts,b) in enumerate(flv_tags(p)):
            if i < 8: print(t, ts, len(b), b[:12].hex())
    else:
        e, cfg, s0, s1 = mp4_info(p)
        print(e, cfg[0], cfg[1].hex(), len(s0), s0[:16].hex(), len(s1) if s1 else None)
