#!/usr/bin/env python3
"""What OST's harness sees of a deployment, read the way it reads it (see docs/ost-harness-facts.md §1.2,
§5): running domains named `<8 chars>-ost-...` and active networks named `ost...`, kept when the
no-namespace `ost-working-dir` under `{OST:metadata}ost` equals the deployment path exactly; network roles
from `ost-network-role`; IPv4 DHCP hosts by MAC (prefix from `netmask`), IPv6 hosts whose DUID ends with
the MAC; NIC names from libvirt's `net<N>` aliases; deploy scripts from the domain metadata. Written for
ost's e2e tests (not OST's code); prints JSON.

usage: ost_harness_view.py DEPLOYMENT_DIR   (virsh uses $LIBVIRT_DEFAULT_URI, as OST's does)
"""
import ipaddress
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

META = './metadata/{OST:metadata}ost/'


def virsh(*args):
    return subprocess.run(['virsh', *args], check=True, capture_output=True, text=True).stdout


def names(out):
    return [line.strip() for line in out.splitlines() if line.strip()]


def working_dir(root):
    el = root.find(META + 'ost-working-dir[@comment]')
    return None if el is None else el.get('comment')


def read_networks(deployment):
    networks = {}
    for name in names(virsh('net-list', '--name')):
        if not name.startswith('ost'):
            continue
        root = ET.fromstring(virsh('net-dumpxml', name))
        if working_dir(root) != deployment:
            continue
        role = root.find(META + 'ost-network-role[@comment]').get('comment')
        net = {'libvirt_name': name, 'ipv4': None, 'ipv6': None, 'hosts4': {}, 'hosts6': {}}
        for ip in root.findall('./ip'):
            hosts = {}
            for h in ip.findall('./dhcp/host'):
                key = h.get('mac') or h.get('id')
                hosts[key] = {'ip': str(ipaddress.ip_address(h.get('ip'))), 'name': h.get('name')}
            if ip.get('family') == 'ipv6':
                prefix = int(ip.get('prefix'))
                net['ipv6'] = str(ipaddress.ip_network(f"{ip.get('address')}/{prefix}", strict=False))
                net['gw6'] = ip.get('address')
                net['hosts6'] = hosts
            else:
                prefix = ipaddress.ip_network(f"0.0.0.0/{ip.get('netmask')}").prefixlen
                net['ipv4'] = str(ipaddress.ip_network(f"{ip.get('address')}/{prefix}", strict=False))
                net['gw4'] = ip.get('address')
                net['hosts4'] = hosts
        networks[role] = net
    return networks


def read_vms(deployment, networks):
    role_of = {n['libvirt_name']: role for role, n in networks.items()}
    vms = {}
    for name in names(virsh('list', '--name')):
        if name[8:13] != '-ost-':
            continue
        root = ET.fromstring(virsh('dumpxml', name))
        if working_dir(root) != deployment:
            continue
        hostname = name[9:]
        scripts = [s.get('name') for s in root.findall(META + 'ost-deploy-scripts/script[@name]')]
        ip_mapping, mac_mapping, nics = {}, {}, []
        for iface in root.findall("./devices/interface[@type='network']"):
            alias = iface.find('./alias').get('name')
            mac = iface.find('./mac').get('address')
            role = role_of[iface.find('./source').get('network')]
            ips = []
            for n in networks.values():
                v6 = next((h['ip'] for k, h in n['hosts6'].items() if k.endswith(mac)), None)
                if v6:
                    ips.append(v6)
                    break
            for n in networks.values():
                if mac in n['hosts4']:
                    ips.append(n['hosts4'][mac]['ip'])
                    break
            ip_mapping.setdefault(role, []).extend(ips)
            mac_mapping.setdefault(role, []).append(mac)
            nics.append({'name': alias.replace('net', 'eth'), 'mac': mac, 'role': role})
        disks = [
            {'dev': d.find('./target').get('dev'), 'serial': (d.findtext('./serial') or '')}
            for d in root.findall("./devices/disk[@device='disk']")
        ]
        vms[hostname] = {
            'libvirt_name': name,
            'deploy_scripts': scripts,
            'nics': nics,
            'ip_mapping': ip_mapping,
            'mac_mapping': mac_mapping,
            'disks': disks,
        }
    return vms


def main():
    deployment = sys.argv[1]
    networks = read_networks(deployment)
    print(json.dumps({'networks': networks, 'vms': read_vms(deployment, networks)}, indent=1))


if __name__ == '__main__':
    main()
