//! Certificates made at test time with rcgen: a certificate authority per
//! test and leaves signed by it (webpki refuses a CA certificate as a server
//! certificate).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls_pki_types::CertificateDer;

/// A certificate authority made for one test.
pub struct Ca {
    pub pem: String,
    pub der: CertificateDer<'static>,
    pub issuer: Issuer<'static, KeyPair>,
}

/// A server or client certificate signed by a [`Ca`], with its key.
#[derive(Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    /// Its serial number (for a CRL that revokes it).
    pub serial: Vec<u8>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// A serial number unique within a test run.
fn next_serial() -> Vec<u8> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32);
    let mut v = n.to_be_bytes().to_vec();
    v[0] &= 0x7f; // positive
    v[0] |= 0x10; // no leading zero byte to strip
    v
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("intermediate key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the intermediate");
        Ca { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A client certificate for mutual TLS: common name `cn`, organization
    /// `org`, extended key usage clientAuth.
    pub fn client(&self, cn: &str, org: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A CRL of this CA revoking `revoked`, in PEM.
    pub fn crl(&self, revoked: &[&Leaf]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|l| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&l.serial),
                    revocation_time: date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).expect("sign the CRL").pem().expect("CRL PEM")
    }

    /// A leaf for `names` naming `ocsp_url` as its OCSP responder (an
    /// Authority Information Access extension).
    pub fn leaf_with_ocsp_url(&self, names: &[&str], ocsp_url: &str) -> Leaf {
        let mut params = leaf_params(names);
        // AuthorityInfoAccessSyntax: SEQUENCE { SEQUENCE { id-ad-ocsp, [6] URI } }.
        let url = ocsp_url.as_bytes();
        let oid_ocsp = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
        let mut desc = oid_ocsp.to_vec();
        desc.push(0x86);
        desc.push(url.len() as u8);
        desc.extend_from_slice(url);
        let mut access = vec![0x30, desc.len() as u8];
        access.extend_from_slice(&desc);
        let mut aia = vec![0x30, access.len() as u8];
        aia.extend_from_slice(&access);
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], aia)];
        self.sign(params)
    }

    /// A leaf for `names` that expires `days` days from today (midnight UTC).
    pub fn leaf_expiring(&self, names: &[&str], days: u64) -> Leaf {
        let mut params = leaf_params(names);
        let today =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() / 86_400;
        let (y, m, d) = civil_from_days(today + days);
        params.not_after = date_time_ymd(y, m, d);
        self.sign(params)
    }

    /// A leaf for `names`: DNS names (wildcards allowed) or IP addresses,
    /// the first also as the common name.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.sign(leaf_params(names))
    }

    /// Signs `params`, with a serial number of its own and a new key.
    fn sign(&self, mut params: CertificateParams) -> Leaf {
        let serial = next_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the certificate");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone(), serial }
    }
}

/// A leaf's parameters for `names`, the first also its common name.
fn leaf_params(names: &[&str]) -> CertificateParams {
    let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf parameters");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params
}

/// The proleptic Gregorian date of a day number since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (i32, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}
