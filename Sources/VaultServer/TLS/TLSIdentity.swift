import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// hsmd's HTTPS identity: a CA made in the state directory on first use, and a server certificate it
/// signs for `localhost`, `127.0.0.1`, `::1` and the names the operator adds. The private keys are
/// files readable by hsmd's user only (0600, in a 0700 directory), like its PINs; clients trust the CA
/// (`hsmctl tls ca`), not a self-signed leaf.
public struct TLSIdentity: Sendable {
    public let caCertificatePEM: String
    let serverCertificate: Certificate
    let serverKey: P256.Signing.PrivateKey

    static let defaultNames = ["localhost", "127.0.0.1", "::1"]

    /// Loads the CA and server certificate from `directory`, making whatever is missing, and a new
    /// server certificate when the names change or it is within 30 days of expiry.
    public static func load(directory: URL, extraNames: [String], now: Date = Date()) throws -> TLSIdentity {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let files = Files(directory: directory)
        try refuseLooseKeyFiles(files)
        let (caKey, caCertificate) = try loadOrMakeCA(files, now: now)
        let names = Array(Set(defaultNames + extraNames)).sorted()
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: String(contentsOf: files.serverKey, encoding: .utf8)),
            let certificate = try? Certificate(pemEncoded: String(contentsOf: files.serverCertificate, encoding: .utf8)),
            certificate.notValidAfter > now.addingTimeInterval(30 * 86_400),
            Set(Self.names(in: certificate)) == Set(names) {
            return TLSIdentity(caCertificatePEM: try caCertificate.serializeAsPEM().pemString, serverCertificate: certificate, serverKey: key)
        }
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(397 * 86_400), issuer: caCertificate.subject,
            subject: try DistinguishedName { CommonName("hsmd"); OrganizationName("hsmd") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(try names.map(generalName))
            },
            issuerPrivateKey: .init(caKey))
        try writeSecret(key.pemRepresentation, to: files.serverKey)
        try Data(try certificate.serializeAsPEM().pemString.utf8).write(to: files.serverCertificate, options: .atomic)
        return TLSIdentity(caCertificatePEM: try caCertificate.serializeAsPEM().pemString, serverCertificate: certificate, serverKey: key)
    }

    /// A private key file others can read may already have leaked: hsmd does not use it silently.
    private static func refuseLooseKeyFiles(_ files: Files) throws {
        for key in [files.caKey, files.serverKey] {
            guard let mode = (try? FileManager.default.attributesOfItem(atPath: key.path))?[.posixPermissions] as? Int,
                mode & 0o077 != 0
            else { continue }
            throw LooseKeyFile(description: "\(key.path) is readable by others (mode \(String(mode, radix: 8))); if that was not intended, treat the key as exposed: remove the tls directory to make a new CA, or run: chmod 600 \(key.path)")
        }
    }

    struct LooseKeyFile: Error, CustomStringConvertible {
        let description: String
    }

    /// The TLS context for the HTTPS listener: TLS 1.2 and later.
    public func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(serverCertificate.serializeAsPEM().pemString.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serverKey.pemRepresentation.utf8), format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    private struct Files {
        let directory: URL
        var caKey: URL { directory.appendingPathComponent("ca-key.pem") }
        var caCertificate: URL { directory.appendingPathComponent("ca.pem") }
        var serverKey: URL { directory.appendingPathComponent("server-key.pem") }
        var serverCertificate: URL { directory.appendingPathComponent("server.pem") }
    }

    private static func loadOrMakeCA(_ files: Files, now: Date) throws -> (P256.Signing.PrivateKey, Certificate) {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: String(contentsOf: files.caKey, encoding: .utf8)),
            let certificate = try? Certificate(pemEncoded: String(contentsOf: files.caCertificate, encoding: .utf8)) {
            return (key, certificate)
        }
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("hsmd local CA"); OrganizationName("hsmd") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86_400), issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        try writeSecret(key.pemRepresentation, to: files.caKey)
        try Data(try certificate.serializeAsPEM().pemString.utf8).write(to: files.caCertificate, options: .atomic)
        return (key, certificate)
    }

    private static func generalName(_ name: String) throws -> GeneralName {
        if let address = IPv4Address(name) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes))) }
        if let address = IPv6Address(name) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes))) }
        return .dnsName(name)
    }

    private static func names(in certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            switch name {
            case .dnsName(let dns): dns
            case .ipAddress(let octets): IPv4Address(bytes: Array(octets.bytes))?.text ?? IPv6Address(bytes: Array(octets.bytes))?.text
            default: nil
            }
        }
    }

    private static func writeSecret(_ text: String, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: url.path]) }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count, fsync(descriptor) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
    }
}

/// Textual IP addresses through the C library (inet_pton/inet_ntop), for certificate names.
struct IPv4Address {
    let bytes: [UInt8]

    init?(_ text: String) {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        bytes = withUnsafeBytes(of: &address) { Array($0) }
    }

    init?(bytes: [UInt8]) {
        guard bytes.count == 4 else { return nil }
        self.bytes = bytes
    }

    var text: String? { Self.format(bytes, family: AF_INET, length: Int(INET_ADDRSTRLEN)) }

    static func format(_ bytes: [UInt8], family: Int32, length: Int) -> String? {
        var buffer = [CChar](repeating: 0, count: length)
        return bytes.withUnsafeBytes { raw in
            guard inet_ntop(family, raw.baseAddress, &buffer, socklen_t(length)) != nil else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

struct IPv6Address {
    let bytes: [UInt8]

    init?(_ text: String) {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        bytes = withUnsafeBytes(of: &address) { Array($0) }
    }

    init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    var text: String? { IPv4Address.format(bytes, family: AF_INET6, length: Int(INET6_ADDRSTRLEN)) }
}
