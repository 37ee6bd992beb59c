#!/usr/bin/env python3
"""An independent implementation for hsmd's tests: Python's `cryptography` (OpenSSL).

Reads a JSON array of requests on stdin and writes a JSON array of answers, one per request, so a
test pays the interpreter's start-up once. Binary values are base64url without padding, as in JWKs.
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap, aes_key_unwrap_with_padding, aes_key_wrap, aes_key_wrap_with_padding)
from cryptography.hazmat.primitives import padding as sympadding
from cryptography.exceptions import InvalidSignature


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def as_int(text):
    return int.from_bytes(b64d(text), "big")


def to_bytes(number, size=None):
    size = size or max(1, (number.bit_length() + 7) // 8)
    return number.to_bytes(size, "big")


CURVES = {"P-256": ec.SECP256R1, "P-256K": ec.SECP256K1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
SIZES = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}


def hash_of(alg):
    for bits, hash_type in (("512", hashes.SHA512), ("384", hashes.SHA384), ("256", hashes.SHA256)):
        if bits in alg:
            return hash_type()
    raise ValueError(f"no hash in {alg}")


def public_key(jwk):
    if jwk["kty"].startswith("RSA"):
        return rsa.RSAPublicNumbers(as_int(jwk["e"]), as_int(jwk["n"])).public_key()
    curve = CURVES[jwk["crv"]]()
    return ec.EllipticCurvePublicNumbers(as_int(jwk["x"]), as_int(jwk["y"]), curve).public_key()


def private_key(jwk):
    if jwk["kty"].startswith("RSA"):
        pub = rsa.RSAPublicNumbers(as_int(jwk["e"]), as_int(jwk["n"]))
        return rsa.RSAPrivateNumbers(
            as_int(jwk["p"]), as_int(jwk["q"]), as_int(jwk["d"]), as_int(jwk["dp"]),
            as_int(jwk["dq"]), as_int(jwk["qi"]), pub).private_key()
    return ec.derive_private_key(as_int(jwk["d"]), CURVES[jwk["crv"]]())


def rsa_padding(alg):
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    h = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def verify(req):
    alg, key = req["alg"], public_key(req["key"])
    digest, signature = b64d(req["digest"]), b64d(req["signature"])
    prehashed = utils.Prehashed(hash_of(alg))
    try:
        if alg.startswith("RS"):
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        elif alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(hash_of(alg)), salt_length=hash_of(alg).digest_size)
            key.verify(signature, digest, pss, prehashed)
        else:
            half = len(signature) // 2
            der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                             int.from_bytes(signature[half:], "big"))
            key.verify(der, digest, ec.ECDSA(prehashed))
        return {"valid": True}
    except InvalidSignature:
        return {"valid": False}


def sign(req):
    alg, key, digest = req["alg"], private_key(req["key"]), b64d(req["digest"])
    prehashed = utils.Prehashed(hash_of(alg))
    if alg.startswith("RS"):
        return {"signature": b64e(key.sign(digest, padding.PKCS1v15(), prehashed))}
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(hash_of(alg)), salt_length=hash_of(alg).digest_size)
        return {"signature": b64e(key.sign(digest, pss, prehashed))}
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(prehashed)))
    size = SIZES[req["key"]["crv"]]
    return {"signature": b64e(to_bytes(r, size) + to_bytes(s, size))}


def mac(req):
    import hmac
    digest = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}[req["alg"]]
    return {"signature": b64e(hmac.new(b64d(req["key"]["k"]), b64d(req["value"]), digest).digest())}


def generate(req):
    if req["kind"] == "rsa":
        key = rsa.generate_private_key(65537, req["size"])
        n = key.private_numbers()
        return {"kty": "RSA", "n": b64e(to_bytes(n.public_numbers.n)), "e": b64e(to_bytes(n.public_numbers.e)),
                "d": b64e(to_bytes(n.d)), "p": b64e(to_bytes(n.p)), "q": b64e(to_bytes(n.q)),
                "dp": b64e(to_bytes(n.dmp1)), "dq": b64e(to_bytes(n.dmq1)), "qi": b64e(to_bytes(n.iqmp))}
    if req["kind"] == "ec":
        key = ec.generate_private_key(CURVES[req["curve"]]())
        n, size = key.private_numbers(), SIZES[req["curve"]]
        return {"kty": "EC", "crv": req["curve"], "d": b64e(to_bytes(n.private_value, size)),
                "x": b64e(to_bytes(n.public_numbers.x, size)), "y": b64e(to_bytes(n.public_numbers.y, size))}
    import os
    return {"kty": "oct", "k": b64e(os.urandom(req["size"] // 8))}


def rsa_encrypt(req):
    return {"value": b64e(public_key(req["key"]).encrypt(b64d(req["value"]), rsa_padding(req["alg"])))}


def rsa_decrypt(req):
    return {"value": b64e(private_key(req["key"]).decrypt(b64d(req["value"]), rsa_padding(req["alg"])))}


def aes(req):
    key, data, mode = b64d(req["key"]["k"]), b64d(req["value"]), req["mode"]
    encrypting = req["op"] == "aes-encrypt"
    if mode == "gcm":
        aad = b64d(req["aad"]) if req.get("aad") else None
        if encrypting:
            sealed = AESGCM(key).encrypt(b64d(req["iv"]), data, aad)
            return {"value": b64e(sealed[:-16]), "tag": b64e(sealed[-16:])}
        return {"value": b64e(AESGCM(key).decrypt(b64d(req["iv"]), data + b64d(req["tag"]), aad))}
    cipher = Cipher(algorithms.AES(key), modes.CBC(b64d(req["iv"])))
    if encrypting:
        if mode == "cbcpad":
            padder = sympadding.PKCS7(128).padder()
            data = padder.update(data) + padder.finalize()
        context = cipher.encryptor()
        return {"value": b64e(context.update(data) + context.finalize())}
    context = cipher.decryptor()
    plain = context.update(data) + context.finalize()
    if mode == "cbcpad":
        unpadder = sympadding.PKCS7(128).unpadder()
        plain = unpadder.update(plain) + unpadder.finalize()
    return {"value": b64e(plain)}


def keywrap(req):
    key, data = b64d(req["key"]["k"]), b64d(req["value"])
    if req["op"] == "kw-wrap":
        return {"value": b64e((aes_key_wrap_with_padding if req["pad"] else aes_key_wrap)(key, data))}
    return {"value": b64e((aes_key_unwrap_with_padding if req["pad"] else aes_key_unwrap)(key, data))}


OPERATIONS = {"verify": verify, "sign": sign, "hmac": mac, "generate": generate, "rsa-encrypt": rsa_encrypt,
              "rsa-decrypt": rsa_decrypt, "aes-encrypt": aes, "aes-decrypt": aes,
              "kw-wrap": keywrap, "kw-unwrap": keywrap}


def main():
    answers = []
    for req in json.load(sys.stdin):
        try:
            answers.append(OPERATIONS[req["op"]](req))
        except Exception as error:  # the test reports it; a crash would hide which request failed
            answers.append({"error": f"{type(error).__name__}: {error}"})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
