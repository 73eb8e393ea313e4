"""katcli.train"""
